"""AWS's Python clients for Aurora DSQL, run by app/tests/suite/real_clients.rs against the local
stand-in with the environment `app local` prints.

    python dsql_clients.py connectors   AWS's connector with psycopg, psycopg2 and asyncpg, each
                                        by the full endpoint, by cluster id + Region and over
                                        direct TLS: write, read back, check; prints
                                        "<driver> <form>: ok" each
    python dsql_clients.py token [--host H] [--region R] [--action admin|user]
                                 [--access-key K --secret S]
                                        prints a token from boto3's dsql client (by default:
                                        admin, the endpoint and Region of the environment, the
                                        profile's credentials)

Any mismatch raises, and the process exits non-zero with the reason on stderr.
"""

import argparse
import asyncio
import os
import sys
import uuid

import boto3

ENDPOINT = os.environ["CLUSTER_ENDPOINT"]
PORT = int(os.environ["CLUSTER_PORT"])
REGION = os.environ["AWS_DEFAULT_REGION"]
CLUSTER_ID = ENDPOINT.split(".", 1)[0]
# The connector leaves TLS to the driver; a cluster needs it, so ask for it as AWS's examples do
# (the CA comes from PGSSLROOTCERT).
TLS = {"sslmode": "verify-full"}


def forms(driver):
    """The documented ways to name the cluster (the endpoint alone, and cluster id + Region),
    then the endpoint over direct TLS (no SSLRequest first; ALPN postgresql), as AWS's
    SQLAlchemy helper asks libpq 17 and later for it."""
    direct = {"direct_tls": True} if driver == "asyncpg" else {"sslnegotiation": "direct"}
    return [
        ("endpoint", ENDPOINT, {"port": PORT, **TLS}),
        ("cluster-id", CLUSTER_ID, {"region": REGION, "port": PORT, **TLS}),
        ("direct-tls", ENDPOINT, {"port": PORT, **TLS, **direct}),
    ]


def expect(what, actual, expected):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def table_of(driver):
    """Each driver's own table, and the statement that makes it."""
    table = f"{driver}_notes"
    return table, f"CREATE TABLE IF NOT EXISTS {table} (id uuid PRIMARY KEY, form text NOT NULL)"


def check_sync(driver, module):
    table, create = table_of(driver)
    for form, host, options in forms(driver):
        conn = module.connect(host, **options)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT current_user, current_setting('application_name')")
                user, application = cur.fetchone()
                expect(f"{driver} {form}: user", user, "admin")
                if not application.startswith(f"aurora-dsql-python-{driver}/"):
                    raise AssertionError(f"{driver} {form}: application_name {application!r}")
            with conn.cursor() as cur:
                cur.execute(create)
            conn.commit()
            key = str(uuid.uuid4())
            with conn.cursor() as cur:
                cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (key, form))
            conn.commit()
            with conn.cursor() as cur:
                cur.execute(f"SELECT form FROM {table} WHERE id = %s", (key,))
                expect(f"{driver} {form}: the row read back", cur.fetchone(), (form,))
            conn.commit()
        finally:
            conn.close()
        print(f"{driver} {form}: ok", flush=True)


async def check_asyncpg():
    import aurora_dsql_asyncpg as dsql

    table, create = table_of("asyncpg")
    for form, host, options in forms("asyncpg"):
        conn = await dsql.connect(host, **options)
        try:
            user = await conn.fetchval("SELECT current_user")
            expect(f"asyncpg {form}: user", user, "admin")
            await conn.execute(create)
            key = uuid.uuid4()
            async with conn.transaction():
                await conn.execute(f"INSERT INTO {table} VALUES ($1, $2)", key, form)
            got = await conn.fetchval(f"SELECT form FROM {table} WHERE id = $1", key)
            expect(f"asyncpg {form}: the row read back", got, form)
        finally:
            await conn.close()
        print(f"asyncpg {form}: ok", flush=True)


def connectors():
    import aurora_dsql_psycopg
    import aurora_dsql_psycopg2

    check_sync("psycopg", aurora_dsql_psycopg)
    check_sync("psycopg2", aurora_dsql_psycopg2)
    asyncio.run(check_asyncpg())


def token(args):
    if args.access_key:
        session = boto3.Session(
            aws_access_key_id=args.access_key, aws_secret_access_key=args.secret
        )
    else:
        session = boto3.Session()
    client = session.client("dsql", region_name=args.region)
    if args.action == "admin":
        print(client.generate_db_connect_admin_auth_token(args.host, args.region))
    else:
        print(client.generate_db_connect_auth_token(args.host, args.region))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("connectors")
    tok = sub.add_parser("token")
    tok.add_argument("--host", default=ENDPOINT)
    tok.add_argument("--region", default=REGION)
    tok.add_argument("--action", choices=["admin", "user"], default="admin")
    tok.add_argument("--access-key")
    tok.add_argument("--secret")
    args = parser.parse_args()
    if args.command == "connectors":
        connectors()
    else:
        token(args)


if __name__ == "__main__":
    try:
        main()
    except Exception as err:  # noqa: BLE001 - the reason goes to stderr, the status says it failed
        print(f"FAILED: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)
