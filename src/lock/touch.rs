//! Extends and releases reach a grant — a lock lease or a semaphore permit — wherever it is
//! visible: on the active tier, and, on Redis, for a grant of an earlier epoch that Redis does
//! not hold, on SQL, where a grant made before the fail-back lives until arming has copied it
//! (an extend made there is copied into Redis too). One rule ([`Miss`]) says what a step that
//! found no grant of the caller's means, so no tier answers `not_owner` for a grant live on
//! either.

use std::future::Future;

use super::rules::Miss;
use super::{LostReason, Touch};
use crate::store::semaphore::{PermitCopy, PermitStore};
use crate::store::{Holder, Lease, LeaseCopy, LockStore, Step, StoreError, Touched};
use crate::tier::{Backend, Blocked, Mode, Tier, EPOCH_RETRIES};
use crate::token::token_parts;

/// A kind of grant: how a backend runs a step on it, and how one extended on SQL is copied
/// into Redis.
pub(crate) trait Grants: Sync {
    /// Whether SQL keeps a record of every grant (a lock's row stays after it ends; an ended
    /// permit's row is deleted).
    const SQL_KEEPS_RECORDS: bool;

    /// Runs `step` on `holder` in `backend`.
    fn touch<'a>(
        &'a self,
        backend: Backend<'a>,
        holder: Holder<'a>,
        step: Step,
        epoch: i64,
        now: i64,
    ) -> impl Future<Output = Result<Touched, StoreError>> + Send + 'a;

    /// Copies `holder`'s grant, as `lease` says it now stands on SQL, into Redis; `false`
    /// when Redis holds a newer one or saw it released.
    fn seed<'a, R: LeaseCopy + PermitCopy>(
        &'a self,
        tier: &'a Tier,
        redis: &'a R,
        holder: Holder<'a>,
        lease: &'a Lease,
        now: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + 'a;
}

/// Lock leases.
pub(crate) struct LockGrants;

impl Grants for LockGrants {
    const SQL_KEEPS_RECORDS: bool = true;

    async fn touch<'a>(
        &'a self,
        backend: Backend<'a>,
        holder: Holder<'a>,
        step: Step,
        epoch: i64,
        now: i64,
    ) -> Result<Touched, StoreError> {
        backend.touch(holder, step, epoch, now).await
    }

    async fn seed<'a, R: LeaseCopy + PermitCopy>(
        &'a self,
        _tier: &'a Tier,
        redis: &'a R,
        holder: Holder<'a>,
        lease: &'a Lease,
        now: i64,
    ) -> Result<bool, StoreError> {
        redis.seed_lease(holder.key.as_str(), lease, now).await
    }
}

/// Semaphore permits.
pub(crate) struct PermitGrants;

impl Grants for PermitGrants {
    const SQL_KEEPS_RECORDS: bool = false;

    async fn touch<'a>(
        &'a self,
        backend: Backend<'a>,
        holder: Holder<'a>,
        step: Step,
        epoch: i64,
        now: i64,
    ) -> Result<Touched, StoreError> {
        backend.touch_permit(holder, step, epoch, now).await
    }

    async fn seed<'a, R: LeaseCopy + PermitCopy>(
        &'a self,
        tier: &'a Tier,
        redis: &'a R,
        holder: Holder<'a>,
        _lease: &'a Lease,
        now: i64,
    ) -> Result<bool, StoreError> {
        let name = holder.key.as_str();
        let found = tier.durably(tier.durable().permit(name, holder.token));
        match found.await? {
            Some((permit, limit)) => redis.seed_permit(name, &permit, limit, now).await,
            None => Ok(false),
        }
    }
}

/// Runs `step` on `holder`'s grant wherever it is visible (see the module's note).
pub(crate) async fn anywhere<G: Grants>(
    tier: &Tier,
    grants: &G,
    step: Step,
    holder: Holder<'_>,
) -> Result<(Touch<Lease>, Mode), Blocked> {
    let (owner, token) = (holder.owner, holder.token);
    for _ in 0..EPOCH_RETRIES {
        let active = tier.active(false)?;
        let mode = active.mode();
        let (epoch, now) = (active.epoch, tier.now());
        let current = match active
            .settle(|b| grants.touch(*b, holder, step, epoch, now))
            .await?
        {
            Touched::Done(lease) => {
                if mode == Mode::Primary && token_parts(token).0 < epoch {
                    follow_on_sql(tier, grants, step, holder, epoch, now).await;
                }
                return Ok((Touch::Done(lease), mode));
            }
            Touched::EpochMismatch => {
                let _ = tier.refresh().await;
                continue;
            }
            Touched::Missed { current } => current,
        };
        let miss = Miss {
            owner,
            token,
            current: current.as_ref(),
            epoch,
            now,
            keeps_records: G::SQL_KEEPS_RECORDS && mode == Mode::Fallback,
        };
        let decided = miss.decide();
        let Some(hot) = active.primary() else {
            return Ok((decided, mode));
        };
        let settled = [LostReason::Superseded, LostReason::MaxHoldExceeded];
        if !miss.older_epoch() || settled.map(Touch::Lost).contains(&decided) {
            return Ok((decided, mode));
        }
        let sql = tier.durable();
        let on_sql = grants.touch(Backend::Sql(sql), holder, step, epoch, now);
        let current = match tier.on_durable(on_sql).await? {
            Touched::Done(lease) => {
                if let Step::Release = step {
                    return Ok((Touch::Done(lease), mode));
                }
                let seeded = hot.settle(|r| grants.seed(tier, r, holder, &lease, now));
                return Ok(match seeded.await? {
                    true => (Touch::Done(lease), mode),
                    false => (Touch::Lost(LostReason::Superseded), mode),
                });
            }
            Touched::EpochMismatch => {
                let _ = tier.refresh().await;
                continue;
            }
            Touched::Missed { current } => current,
        };
        let on_sql = Miss {
            current: current.as_ref(),
            keeps_records: G::SQL_KEEPS_RECORDS,
            ..miss
        };
        return Ok((on_sql.decide(), mode));
    }
    Err(Blocked::EpochChanging)
}

/// After Redis released a grant of an earlier epoch (a SQL grant arming copied in), ends it on
/// SQL too, so a later arming cannot copy it back. Best effort: a failure is logged.
async fn follow_on_sql<G: Grants>(
    tier: &Tier,
    grants: &G,
    step: Step,
    holder: Holder<'_>,
    epoch: i64,
    now: i64,
) {
    if let Step::Extend { .. } = step {
        return;
    }
    let sql = tier.durable();
    let on_sql = grants.touch(Backend::Sql(sql), holder, step, epoch, now);
    if let Err(b) = tier.on_durable(on_sql).await {
        tracing::warn!(
            reason = b.reason(),
            "release not copied to sql; the grant lapses there"
        );
    }
}
