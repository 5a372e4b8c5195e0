//! `cargo run -p migration -- up|down|status|fresh|refresh|reset` (and `sea-orm-cli migrate …`)
//! against `DATABASE_URL`, with the DSQL-safe runner behind every command.

use sea_orm_migration::prelude::*;

#[tokio::main]
async fn main() {
    cli::run_cli(migration::Migrator).await;
}
