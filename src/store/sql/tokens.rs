//! Access tokens as stored: one row per token, keyed by its public id, holding a hash of its
//! secret (never the secret). Rows are never deleted, only revoked.

use super::audit::append;
use super::{classify, col, SqlStore};
use crate::audit::Audit;
pub use crate::store::tokens::StoredToken;
use crate::store::StoreError;

/// The columns, in [`StoredToken`] order (a macro so statements stay `&'static str`).
macro_rules! columns {
    () => {
        "id, name, tenant, scopes, secret_hash, created_at, expires_at, revoked_at, last_used_at"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO warden_tokens (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
);
const BY_ID: &str = concat!("SELECT ", columns!(), " FROM warden_tokens WHERE id = $1");
const ALL: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM warden_tokens ORDER BY created_at, id"
);

fn token_of(row: &sqlx::any::AnyRow) -> Result<StoredToken, StoreError> {
    Ok(StoredToken {
        id: col(row, 0)?,
        name: col(row, 1)?,
        tenant: col(row, 2)?,
        scopes: col(row, 3)?,
        secret_hash: col(row, 4)?,
        created_at: col(row, 5)?,
        expires_at: col(row, 6)?,
        revoked_at: col(row, 7)?,
        last_used_at: col(row, 8)?,
    })
}

impl SqlStore {
    /// Stores a new token, with the audit entry of its creation.
    pub async fn insert_token(&self, t: &StoredToken, audit: &Audit) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(INSERT)
            .bind(&t.id)
            .bind(&t.name)
            .bind(&t.tenant)
            .bind(&t.scopes)
            .bind(&t.secret_hash)
            .bind(t.created_at)
            .bind(t.expires_at)
            .bind(t.revoked_at)
            .bind(t.last_used_at)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        append(&mut tx, self.sqlite, std::slice::from_ref(audit)).await?;
        tx.commit().await.map_err(classify)
    }

    /// The token with public id `id`, if any.
    pub async fn token(&self, id: &str) -> Result<Option<StoredToken>, StoreError> {
        let row = sqlx::query(BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.as_ref().map(token_of).transpose()
    }

    /// Every token, oldest first.
    pub async fn tokens(&self) -> Result<Vec<StoredToken>, StoreError> {
        let rows = sqlx::query(ALL)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.iter().map(token_of).collect()
    }

    /// Revokes token `id` at `now` (a revoked token keeps its first revocation time), with
    /// `audit` recorded when this call revoked it. The token as it now stands, or `None` if
    /// there is no such token.
    pub async fn revoke_token(
        &self,
        id: &str,
        now: i64,
        audit: &Audit,
    ) -> Result<Option<StoredToken>, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE warden_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at = 0",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        if done.rows_affected() == 1 {
            append(&mut tx, self.sqlite, std::slice::from_ref(audit)).await?;
        }
        tx.commit().await.map_err(classify)?;
        self.token(id).await
    }

    /// Records that token `id` was used at `now`.
    pub async fn token_used(&self, id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE warden_tokens SET last_used_at = $2 WHERE id = $1 AND last_used_at < $2",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// Whether any token was ever created.
    pub async fn any_token(&self) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT id FROM warden_tokens LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        Ok(row.is_some())
    }
}
