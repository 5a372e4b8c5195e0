// The Aurora DSQL Sequelize sample's stack (Sequelize 6, node-postgres and AWS's node-postgres
// connector injected as `dialectModule`), doing what the sample does, with its results checked.
// Run by app/tests/real_clients.rs against the local stand-in with the environment `app local`
// prints, plus CLUSTER_USER.
//
//   node sequelize_sample.js          the sample: tables, models, associations, create, query
//   node sequelize_sample.js retry    the sample's retry wrapper on one update: prints
//                                     "pid <backend pid>", waits for a line on stdin (the test
//                                     forces a conflict on that session), then runs the update
//                                     through the wrapper and prints "updated <n>"
//   node sequelize_sample.js bench N C
//                                     the seed's baseline for `app bench`: the clinic story
//                                     done the seed's way, N iterations by C clients, on the
//                                     app's own (migrated, empty) tables; connects to
//                                     CLUSTER_PORT, opens C connections, prints "ready", waits
//                                     for a line on stdin, runs, then prints one line of JSON
//                                     {"iterations", "p50_us", "p99_us"}
//
// Any mismatch throws, and the process exits non-zero with the reason on stderr.
'use strict';

const { AuroraDSQLClient } = require('@aws/aurora-dsql-node-postgres-connector');
const pg = require('pg');
const { Sequelize, DataTypes, Model, UniqueConstraintError } = require('sequelize');
const readline = require('node:readline');

const ADMIN = 'admin';

// The sample's connection code, unchanged but for `overrides` (the benchmark's port and pool).
// The sample names no port: Sequelize's postgres dialect then connects to 5432 whatever the
// environment says, so the stand-in must listen there.
function getSequelizeConnection(overrides = {}) {
  const clusterEndpoint = process.env.CLUSTER_ENDPOINT;
  if (!clusterEndpoint) {
    throw new Error('Missing required environment variable CLUSTER_ENDPOINT');
  }
  const user = process.env.CLUSTER_USER;
  if (!user) {
    throw new Error('Missing required environment variable CLUSTER_USER');
  }

  return new Sequelize({
    host: clusterEndpoint,
    username: user,
    dialect: 'postgres',
    dialectModule: {
      ...pg,
      Client: AuroraDSQLClient,
    },
    dialectOptions: {
      clientMinMessages: 'ignore',
    },
    define: {
      timestamps: false,
    },
    pool: {
      max: 5,
      min: 0,
      acquire: 30000,
      idle: 10000,
    },
    hooks: {
      afterConnect: async (connection) => {
        console.log('Successfully opened connection');
        if (user !== ADMIN) {
          await connection.query('SET search_path TO myschema');
        }
      },
    },
    logging: false, // The sample logs every statement (console.log); the test reads stdout.
    ...overrides,
  });
}

// The sample's retry wrapper, unchanged.
async function executeSqlStatementWithRetry(instance, sqlStatement, maxRetries = 0) {
  let retries = 0;
  while (retries <= maxRetries) {
    try {
      const result = await instance.transaction(async (transaction) => {
        return await instance.query(sqlStatement, {
          transaction,
        });
      });
      return result;
    } catch (error) {
      const err = error;
      if (retries === maxRetries) {
        throw new Error(`Maximum retries (${maxRetries}) reached. Last error: ${err.message}`);
      }
      if (err.message.includes('OC001') || err.message.includes('OC000')) {
        console.log(`Error occurred when executing statement ${sqlStatement}, executing retry`);
        retries += 1;
      } else {
        throw err;
      }
    }
  }
}

function expect(what, actual, expected) {
  const [a, e] = [JSON.stringify(actual), JSON.stringify(expected)];
  if (a !== e) {
    throw new Error(`${what}: expected ${e}, got ${a}`);
  }
}

class Owner extends Model {}
class Pet extends Model {}
class VetSpecialties extends Model {}
class Specialty extends Model {}
class Vet extends Model {}

const uuidKey = { type: DataTypes.UUID, primaryKey: true, defaultValue: DataTypes.UUIDV4 };
const attributes = {
  owner: {
    id: uuidKey,
    name: { type: DataTypes.STRING(30), allowNull: false },
    city: { type: DataTypes.STRING(80), allowNull: false },
    telephone: { type: DataTypes.STRING(20), allowNull: true, defaultValue: null },
  },
  pet: {
    id: uuidKey,
    name: { type: DataTypes.STRING(30), allowNull: false },
    birthDate: { type: DataTypes.DATEONLY, allowNull: false },
    ownerId: { type: DataTypes.UUID, allowNull: true },
  },
  specialty: {
    id: { type: DataTypes.STRING(80), primaryKey: true, field: 'name' },
  },
  vet: {
    id: uuidKey,
    name: { type: DataTypes.STRING(30), allowNull: false },
  },
  vetSpecialties: {
    id: uuidKey,
    vetId: { type: DataTypes.UUID, allowNull: true },
    specialtyId: { type: DataTypes.STRING(80), allowNull: true },
  },
};

async function sequelizeExample() {
  const sequelize = getSequelizeConnection();
  await sequelize.authenticate();
  const [[{ schema }]] = await sequelize.query('SELECT current_schema() AS schema');
  expect('the schema', schema, process.env.CLUSTER_USER === ADMIN ? 'public' : 'myschema');

  // Tables with `createTable` (`sync` is not supported on DSQL), one DDL statement each.
  const queryInterface = sequelize.getQueryInterface();
  for (const table of ['vetSpecialties', 'pet', 'vet', 'specialty', 'owner']) {
    await queryInterface.dropTable(table, { cascade: true, force: true });
  }
  for (const table of ['owner', 'pet', 'specialty', 'vet', 'vetSpecialties']) {
    await queryInterface.createTable(table, attributes[table]);
  }

  // Models in memory; relationships without database constraints.
  Owner.init(attributes.owner, { sequelize, tableName: 'owner' });
  Pet.init(attributes.pet, { sequelize, tableName: 'pet' });
  VetSpecialties.init(attributes.vetSpecialties, { sequelize, tableName: 'vetSpecialties' });
  Specialty.init(attributes.specialty, { sequelize, tableName: 'specialty' });
  Vet.init(attributes.vet, { sequelize, tableName: 'vet' });
  Pet.belongsTo(Owner, { foreignKey: 'ownerId', constraints: false });
  Owner.hasMany(Pet, { foreignKey: 'ownerId', constraints: false });
  Vet.belongsToMany(Specialty, {
    through: VetSpecialties, foreignKey: 'vetId', otherKey: 'specialtyId', constraints: false,
  });
  Specialty.belongsToMany(Vet, {
    through: VetSpecialties, foreignKey: 'specialtyId', otherKey: 'vetId', constraints: false,
    as: 'Specialties',
  });

  // Two owners, two pets.
  const john = await Owner.create({ name: 'John Doe', city: 'Anytown' });
  await Owner.create({ name: 'Mary Major', telephone: '555-555-0123', city: 'Anytown' });
  await Pet.create({ name: 'Pet1', birthDate: '2006-10-25', ownerId: john.id });
  await Pet.create({ name: 'Pet2', birthDate: '2021-07-23', ownerId: john.id });

  const pet1 = await Pet.findOne({ where: { name: 'Pet1' } });
  expect('Pet1', [pet1.name, pet1.birthDate, pet1.ownerId], ['Pet1', '2006-10-25', john.id]);
  const owner = await Owner.findOne({ where: { id: pet1.ownerId } });
  expect("Pet1's owner", [owner.name, owner.city, owner.telephone], ['John Doe', 'Anytown', null]);
  const johnsPets = await Pet.findAll({ where: { ownerId: john.id }, order: [['name', 'ASC']] });
  expect("John's pets", johnsPets.map((p) => p.name), ['Pet1', 'Pet2']);
  expect('owners', await Owner.count(), 2);

  // Vets and specialties, many to many through vetSpecialties.
  const [exotic, dogs, cats] = await Specialty.bulkCreate([
    { id: 'Exotic' }, { id: 'Dogs' }, { id: 'Cats' },
  ]);
  const akua = await Vet.create({ name: 'Akua Mansa' });
  const carlos = await Vet.create({ name: 'Carlos Salazar' });
  await akua.setSpecialties([exotic]);
  await carlos.setSpecialties([cats, dogs]);

  const withSpecialties = (name) => Vet.findOne({
    where: { name },
    include: [{ model: Specialty, as: 'Specialties' }],
    order: [[{ model: Specialty, as: 'Specialties' }, 'id', 'ASC']],
  });
  const akuaResult = await withSpecialties('Akua Mansa');
  expect("Akua's specialties", akuaResult.Specialties.map((s) => s.id), ['Exotic']);
  const carlosResult = await withSpecialties('Carlos Salazar');
  expect("Carlos's specialties", carlosResult.Specialties.map((s) => s.id), ['Cats', 'Dogs']);
  expect('a specialty by key', (await Specialty.findByPk('Dogs')).id, 'Dogs');

  await sequelize.close();
  console.log('sample: ok');
}

// The sample's retry example: DDL through the wrapper, and a failure it must not retry.
async function retryExample() {
  const sequelize = getSequelizeConnection();
  await sequelize.authenticate();
  await executeSqlStatementWithRetry(sequelize, 'CREATE TABLE IF NOT EXISTS abc (id UUID NOT NULL);');
  await executeSqlStatementWithRetry(sequelize, 'DROP TABLE IF EXISTS abc;');
  let refused;
  try {
    await executeSqlStatementWithRetry(sequelize, 'DROP TABLE abc;');
  } catch (err) {
    refused = err;
  }
  if (!refused || !refused.message.includes('does not exist')) {
    throw new Error(`dropping a missing table: expected "does not exist", got ${refused}`);
  }
  await executeSqlStatementWithRetry(sequelize, 'CREATE TABLE IF NOT EXISTS abc (id UUID NOT NULL);', 3);
  await executeSqlStatementWithRetry(sequelize, 'DROP TABLE IF EXISTS abc;', 3);
  await sequelize.close();
  console.log('retry example: ok');
}

// One increment through the wrapper, after the test has forced a conflict on this session.
async function forcedConflict() {
  const sequelize = getSequelizeConnection();
  await executeSqlStatementWithRetry(sequelize, 'CREATE TABLE IF NOT EXISTS counter (id int PRIMARY KEY, n int NOT NULL);');
  await executeSqlStatementWithRetry(sequelize, 'INSERT INTO counter VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET n = 0;');
  // The pool has one idle connection now; the wrapper's transaction takes it again.
  const [[{ pid }]] = await sequelize.query('SELECT pg_backend_pid() AS pid');
  console.log(`pid ${pid}`);
  const lines = readline.createInterface({ input: process.stdin });
  await new Promise((resolve) => lines.once('line', resolve));
  lines.close();
  await executeSqlStatementWithRetry(sequelize, 'UPDATE counter SET n = n + 1 WHERE id = 1;', 3);
  const [[{ n }]] = await sequelize.query('SELECT n FROM counter WHERE id = 1');
  console.log(`updated ${n}`);
  expect('the counter after one increment', n, 1);
  await sequelize.close();
}

// The app's clinic tables (its migrations), as Sequelize models, for the benchmark.
const clinicAttributes = {
  owner: {
    id: uuidKey,
    name: { type: DataTypes.STRING(30), allowNull: false },
    city: { type: DataTypes.STRING(80), allowNull: false },
    telephone: { type: DataTypes.STRING(20), allowNull: true, defaultValue: null },
    email: { type: DataTypes.STRING(255), allowNull: false, unique: true },
  },
  pet: {
    id: uuidKey,
    name: { type: DataTypes.STRING(30), allowNull: false },
    birthDate: { type: DataTypes.DATEONLY, allowNull: false, field: 'birth_date' },
    ownerId: { type: DataTypes.UUID, allowNull: true, field: 'owner_id' },
    status: { type: DataTypes.STRING(20), allowNull: false },
    metadata: { type: DataTypes.JSONB, allowNull: true },
    visitCount: { type: DataTypes.INTEGER, allowNull: true, field: 'visit_count' },
  },
  specialty: {
    name: { type: DataTypes.STRING(80), primaryKey: true },
  },
};

// Nearest-rank percentile of sorted numbers.
function percentile(sorted, p) {
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length)));
  return sorted[rank - 1];
}

// The clinic story, iteration `i`, the seed's way: one Sequelize call per step, each its own
// autocommit statement, no owner check, and find-or-create as findOne then create (Sequelize's
// findOrCreate needs a transaction with a savepoint, which DSQL refuses); a create that loses
// the race to a concurrent one finds the winner's row.
async function clinicIteration(models, i) {
  const { Owner, Pet, Specialty } = models;
  const email = `owner${i}@example.com`;
  const owner = await Owner.create({ name: `Owner ${i}`, city: 'Anytown', email });
  for (const suffix of ['a', 'b']) {
    await Pet.create({
      name: `Pet ${i}${suffix}`, birthDate: '2020-01-01', ownerId: owner.id, status: 'waiting',
      visitCount: 0,
    });
  }
  const pet = await Pet.findOne({ where: { name: `Pet ${i}a` } });
  const found = await Owner.findByPk(pet.ownerId);
  expect(`iteration ${i}: the pet's owner`, found.id, owner.id);
  await Owner.upsert(
    { name: `Owner ${i}`, city: 'Othertown', telephone: null, email },
    { conflictFields: ['email'], fields: ['name', 'city', 'telephone', 'email'] },
  );
  const name = `S${i % 10}`;
  if (!(await Specialty.findOne({ where: { name } }))) {
    try {
      await Specialty.create({ name });
    } catch (err) {
      if (!(err instanceof UniqueConstraintError)) throw err;
      expect(`iteration ${i}: the specialty`, (await Specialty.findOne({ where: { name } })).name, name);
    }
  }
  const withPets = await Owner.findByPk(owner.id, { include: Pet });
  expect(`iteration ${i}: the owner's city and pets`, [withPets.city, withPets.pets.length], ['Othertown', 2]);
}

// The benchmark's baseline: `iterations` of the clinic story shared by `clients` clients.
async function bench(iterations, clients) {
  const port = Number(process.env.CLUSTER_PORT);
  if (!(iterations > 0 && clients > 0 && port > 0)) {
    throw new Error('usage: bench N C, with CLUSTER_PORT set');
  }
  const sequelize = getSequelizeConnection({
    port,
    pool: { max: clients, min: clients, acquire: 30000, idle: 600000 },
    hooks: {
      afterConnect: async (connection) => {
        if (process.env.CLUSTER_USER !== ADMIN) {
          await connection.query('SET search_path TO myschema');
        }
      },
    },
  });
  const models = {
    Owner: class extends Model {},
    Pet: class extends Model {},
    Specialty: class extends Model {},
  };
  for (const [key, table] of [['Owner', 'owner'], ['Pet', 'pet'], ['Specialty', 'specialty']]) {
    models[key].init(clinicAttributes[table], { sequelize, tableName: table, modelName: table });
  }
  models.Pet.belongsTo(models.Owner, { foreignKey: 'ownerId', constraints: false });
  models.Owner.hasMany(models.Pet, { foreignKey: 'ownerId', constraints: false });

  // Open every connection of the pool before the clock starts: hold `clients` at once.
  let arrived = 0;
  let release;
  const allThere = new Promise((resolve) => { release = resolve; });
  await Promise.all(Array.from({ length: clients }, () => sequelize.transaction(async (t) => {
    await sequelize.query('SELECT 1', { transaction: t });
    arrived += 1;
    if (arrived === clients) release();
    await allThere;
  })));
  console.log('ready');
  const lines = readline.createInterface({ input: process.stdin });
  await new Promise((resolve) => lines.once('line', resolve));
  lines.close();

  let next = 0;
  const latencies = [];
  await Promise.all(Array.from({ length: clients }, async () => {
    for (let i = next++; i < iterations; i = next++) {
      const start = process.hrtime.bigint();
      await clinicIteration(models, i);
      latencies.push(Number(process.hrtime.bigint() - start) / 1000);
    }
  }));
  latencies.sort((a, b) => a - b);
  console.log(JSON.stringify({
    iterations: latencies.length,
    p50_us: percentile(latencies, 0.5),
    p99_us: percentile(latencies, 0.99),
  }));
  await sequelize.close();
}

async function main() {
  if (process.argv[2] === 'retry') {
    await forcedConflict();
  } else if (process.argv[2] === 'bench') {
    await bench(Number(process.argv[3]), Number(process.argv[4]));
  } else {
    await sequelizeExample();
    await retryExample();
  }
}

main().catch((err) => {
  console.error(`FAILED: ${err.stack || err}`);
  process.exit(1);
});
