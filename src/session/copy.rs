//! Sessions' hot copies in Redis: a read is answered from the copy only when it was written in
//! the active epoch with no write in flight. A write to one session holds its copy before SQL
//! and seeds it after; ends learned of only at commit (a logout everywhere, an eviction) are
//! written over the copies at their moved-on versions, so a reader's late seed of the live
//! session is refused, and a failed write of one moves the epoch on.

use super::{gone, id_hash, well_formed, Sessions};
use crate::metrics_names as m;
use crate::session::SessionTouch;
use crate::store::copy;
use crate::store::copy::Seeder;
use crate::store::session::{SessionRow, COPY_FIELDS};
use crate::tier::{Blocked, Looked, Mode, Primary};

/// The Redis key of the copy of session `hash` of `tenant`.
fn copy_key(tenant: &str, hash: &str) -> String {
    copy::copy_key(&format!("session/{tenant}/{hash}"), "copy")
}

/// A write's view of the tier: the primary (if active), the mode answers carry, the epoch.
pub(super) struct Writing<'a> {
    pub(super) primary: Option<Primary<'a>>,
    pub(super) mode: Mode,
    pub(super) epoch: i64,
}

impl Sessions {
    /// How long the copy of `r` may stay in Redis from `now`: an ended session's for
    /// `sessions.copy_ttl_ms`, a live one's at most until its absolute expiry.
    fn copy_ttl(&self, r: &SessionRow, now: i64) -> i64 {
        let ttl = self.cfg.copy_ttl_ms as i64;
        if r.state == crate::store::session::state::ACTIVE {
            ttl.min(r.absolute_expires_at - now).max(1)
        } else {
            ttl
        }
    }

    /// Session `id` of `tenant` as it stands: from its hot copy when current, else from SQL
    /// (seeding the copy). With the mode answers carry.
    pub(super) async fn look(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<(SessionTouch, Mode), Blocked> {
        let active = self.tier.active_durable()?;
        let (mut mode, epoch, primary) = (active.mode(), active.epoch, active.primary());
        if !well_formed(id) {
            return Ok((SessionTouch::NotFound, mode));
        }
        let hash = id_hash(id);
        let key = copy_key(tenant, &hash);
        let mut reseed = false;
        if let Some(p) = primary {
            let parse = |v, f: &_| SessionRow::from_copy(tenant, &hash, v, f);
            match p
                .look_copy(m::SESSION_COPY, &key, &COPY_FIELDS, epoch, parse)
                .await
            {
                Looked::Hit(row) => return Ok((self.standing(row), mode)),
                looked => {
                    reseed = matches!(looked, Looked::Miss);
                    mode = looked.sql_mode();
                }
            }
        }
        let sql = self.tier.durable();
        let row = self.tier.on_durable(sql.session(tenant, &hash)).await?;
        let Some(row) = row else {
            return Ok((SessionTouch::NotFound, mode));
        };
        if let (Some(p), true) = (primary, reseed) {
            self.seed(p, epoch, &row, Seeder::Reader).await;
        }
        Ok((self.standing(row), mode))
    }

    /// How `row` answers now: live, or why not.
    pub(super) fn standing(&self, row: SessionRow) -> SessionTouch {
        match gone(&row, self.tier.now()) {
            Some(g) => SessionTouch::Gone(g),
            None => SessionTouch::Touched(row),
        }
    }

    /// Before a write to session `hash`: holds its copy on the primary tier.
    pub(super) async fn hold(&self, tenant: &str, hash: &str) -> Result<Writing<'_>, Blocked> {
        let w = self.writing()?;
        if let Some(p) = w.primary {
            let key = copy_key(tenant, hash);
            p.hold_copy(&key, self.cfg.hold_ms as i64).await?;
        }
        Ok(w)
    }

    /// After a write SQL answered: seeds the copy of session `hash` with `row` as SQL now holds
    /// it (or, with no row, releases the hold).
    pub(super) async fn settle(
        &self,
        w: &Writing<'_>,
        tenant: &str,
        hash: &str,
        row: Option<&SessionRow>,
    ) {
        let Some(p) = w.primary else { return };
        match row {
            Some(r) => self.seed(p, w.epoch, r, Seeder::Writer).await,
            None => p.release_copy(&copy_key(tenant, hash)).await,
        }
    }

    /// Writes `row` into its copy as `by`.
    pub(super) async fn seed(&self, p: Primary<'_>, epoch: i64, row: &SessionRow, by: Seeder) {
        let key = copy_key(&row.tenant, &row.id_hash);
        let ttl = self.copy_ttl(row, self.tier.now());
        let fields = row.copy_fields();
        let _ = p
            .seed_copy(&key, epoch, row.version, &fields, by, ttl)
            .await;
    }

    /// After a commit that ended sessions it could not hold beforehand: writes each end
    /// (`(id hash, version)`, as `to`) over its copy.
    pub(super) async fn end_copies(
        &self,
        w: &Writing<'_>,
        tenant: &str,
        ended: &[(String, i64)],
        to: &str,
    ) {
        let Some(p) = w.primary else { return };
        let ends = ended.iter().map(|(hash, version)| async move {
            let row = SessionRow::ended(tenant, hash, to, *version);
            let key = copy_key(tenant, hash);
            let ttl = self.copy_ttl(&row, 0);
            let fields = row.copy_fields();
            p.end_copy(&self.tier, &key, w.epoch, *version, &fields, ttl)
                .await;
        });
        futures::future::join_all(ends).await;
    }

    /// The tier as a write that holds nothing beforehand sees it.
    pub(super) fn writing(&self) -> Result<Writing<'_>, Blocked> {
        let active = self.tier.active_durable()?;
        Ok(Writing {
            primary: active.primary(),
            mode: active.mode(),
            epoch: active.epoch,
        })
    }
}
