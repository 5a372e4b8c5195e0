//! `SELECT … FOR UPDATE`, by primary key only.
//!
//! DSQL supports `FOR UPDATE` (and `FOR KEY SHARE`) but never blocks: a locked row that another
//! transaction changes makes one of the two fail at commit with `40001`. The Sequelize sample
//! documents that locking works only with an equality predicate on the primary key, so this
//! API offers nothing else, and only inside a transaction (a lock outside one is meaningless).

use sea_orm::sea_query::LockType;
use sea_orm::{DatabaseTransaction, DbErr, EntityTrait, PrimaryKeyTrait, QuerySelect};

/// Reads the row with primary key `id` and adds it to the transaction's conflict set
/// (`SELECT … WHERE <pk> = $1 FOR UPDATE`): if another transaction changes it before this one
/// commits, one of them fails with `40001`.
pub async fn find_for_update<E>(
    txn: &DatabaseTransaction,
    id: <E::PrimaryKey as PrimaryKeyTrait>::ValueType,
) -> Result<Option<E::Model>, DbErr>
where
    E: EntityTrait,
{
    E::find_by_id(id).lock(LockType::Update).one(txn).await
}

/// Reads the row with primary key `id` with `FOR KEY SHARE`: a concurrent delete of that row
/// (or change of its key) conflicts with this transaction. Used to check a parent exists
/// without a foreign key.
pub async fn find_for_key_share<E>(
    txn: &DatabaseTransaction,
    id: <E::PrimaryKey as PrimaryKeyTrait>::ValueType,
) -> Result<Option<E::Model>, DbErr>
where
    E: EntityTrait,
{
    E::find_by_id(id).lock(LockType::KeyShare).one(txn).await
}
