//! Reaching Aurora DSQL: the endpoint, IAM authentication tokens, and a sqlx pool whose
//! password is refreshed in the background.

pub mod endpoint;
pub mod pool;
pub mod token;
