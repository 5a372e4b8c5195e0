//! `SELECT … FOR UPDATE`, by primary key only.
//!
//! DSQL supports `FOR UPDATE` (and `FOR KEY SHARE`) but never blocks: a locked row that another
//! transaction changes makes one of the two fail at commit with `40001`. The Sequelize sample
//! documents that locking works only with an equality predicate on the primary key, so this
//! API offers nothing else, and only inside a transaction (a lock outside one is meaningless).
//! `FOR KEY SHARE`, which makes a concurrent delete of a parent row conflict, is best taken in
//! the statement that writes the child (`INSERT … SELECT … WHERE EXISTS (SELECT 1 FROM parent
//! WHERE id = $1 FOR KEY SHARE)`): one round trip, no transaction.

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
