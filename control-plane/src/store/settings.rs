//! Server-wide settings generated once and shared by every replica.

use super::{Db, Sql};

/// The value of `key`, created with `init()` on first use. Concurrent first uses (several
/// replicas starting together) agree on one value: the insert that loses is ignored.
pub async fn get_or_init(
    db: &Db,
    key: &str,
    init: impl FnOnce() -> String,
) -> sqlx::Result<String> {
    let mut ins = Sql::new("INSERT INTO settings (key, value) VALUES (");
    ins.bind(key)
        .push(", ")
        .bind(init())
        .push(") ON CONFLICT (key) DO NOTHING");
    ins.query().execute(db.pool()).await?;
    let mut sel = Sql::new("SELECT value FROM settings WHERE key = ");
    sel.bind(key);
    let row = sel.query().fetch_one(db.pool()).await?;
    sqlx::Row::try_get(&row, 0)
}
