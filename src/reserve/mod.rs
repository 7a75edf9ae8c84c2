//! Flash-sale reservations (G6): reserved + confirmed never exceeds total. On Redis, one Lua
//! step arbitrates each reserve (no oversell, one live hold per user) and the hold is made
//! durable in SQL — whose conditional update refuses anything that would oversell there — by
//! group commit before it is answered. On SQL the same step is one transaction. A hold leaves
//! `held` once, by a conditional SQL update (confirm, release, or the expiry reaper), and the
//! hot copy follows. Hot copies are seeded from SQL per SKU and epoch.

mod once;
mod outcome;
mod reconcile;

pub use once::{claim_for, Recorded, ReservedOnce, KEY_TTL_MS};
pub use outcome::StockRead;
pub use reconcile::Mismatch;

use std::sync::Arc;

use crate::config::{ms, ReservationSettings};
use crate::key::Key;
use crate::metrics_names as m;
use crate::runtime::group_commit::GroupCommit;
use crate::runtime::waiters::Waiters;
use crate::store::reserve::ReserveAsk;
use crate::store::reserve::{Hold, ReserveReply, StockCopy, Transitioned};
pub use crate::store::reserve::{HoldState, Stock};
use crate::store::StoreError;
use crate::tier::{Active, Blocked, Mode, Primary, Tier};

/// Longest hold, ms (24 h).
pub const MAX_TTL_MS: i64 = 86_400_000;
/// Hold length when none is given, ms.
pub const DEFAULT_TTL_MS: i64 = 600_000;
/// Most units in one hold.
pub const MAX_QUANTITY: i64 = 1_000_000;
/// Largest total stock of one SKU.
pub const MAX_TOTAL: i64 = 1 << 40;
/// Attempts of one request across a reseed or an epoch change.
const ATTEMPTS: usize = 3;

/// A validated reservation request.
#[derive(Debug, Clone)]
pub struct ReserveRequest {
    /// SKU.
    pub sku: Key,
    /// Buyer.
    pub user_id: String,
    /// Units, 1..=[`MAX_QUANTITY`].
    pub quantity: i64,
    /// Hold length, 1..=[`MAX_TTL_MS`].
    pub ttl_ms: i64,
}

/// The answer to a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    /// Held until `expires_at`.
    Reserved {
        /// Reservation id.
        id: String,
        /// Deadline, epoch ms.
        expires_at: i64,
        /// Units still available after this hold.
        remaining: i64,
    },
    /// Not enough units.
    OutOfStock {
        /// Units available.
        remaining: i64,
    },
    /// The user already holds this SKU.
    AlreadyReserved {
        /// The live hold's id.
        id: String,
    },
}

/// The answer to a confirm or release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// The hold is in the requested state (now, or already on a retry).
    Done(HoldState),
    /// The deadline passed first: the units went back to stock.
    Expired,
    /// The hold ended otherwise (its state).
    Conflict(HoldState),
    /// No such reservation.
    Missing,
}

/// The answer to a stock change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TotalSet {
    /// Set; the counts after.
    Set(Stock),
    /// Holds and sales exceed the requested total; the counts unchanged.
    BelowHeld(Stock),
}

/// The reservation service.
pub struct Reservations {
    tier: Arc<Tier>,
    cfg: ReservationSettings,
    writer: GroupCommit<Hold, bool, StoreError>,
    /// Reserves of the fallback tier, batched: one row lock and one update per SKU a batch.
    fallback: GroupCommit<ReserveAsk, ReserveReply, StoreError>,
    /// One seeding per SKU at a time: a burst that finds a stale copy reads SQL once.
    seeding: Waiters,
}

impl Reservations {
    /// Starts the service (and its group-commit writer) over `tier`.
    pub fn start(tier: Arc<Tier>, cfg: &ReservationSettings) -> Arc<Self> {
        let sql = tier.durable().clone();
        let fallback_sql = sql.clone();
        let writer = GroupCommit::start("holds", cfg.writer.into(), move |h| {
            let sql = sql.clone();
            async move { sql.record_holds(h).await }
        });
        let fallback = GroupCommit::start("fallback_reserves", cfg.writer.into(), move |asks| {
            let sql = fallback_sql.clone();
            async move { sql.reserve_batch(asks).await }
        });
        Arc::new(Self {
            tier,
            cfg: cfg.clone(),
            writer,
            fallback,
            seeding: Waiters::default(),
        })
    }

    /// The tier for a state change: Redis only once its failover grace is over (its copies
    /// are seeded from SQL, which the old tier may still be writing); SQL at once, since its
    /// conditional updates arbitrate alone.
    fn pick(&self) -> Result<Active<'_>, Blocked> {
        match self.tier.active(true) {
            Err(grace @ Blocked::Grace { .. }) => {
                let active = self.tier.active(false)?;
                match active.mode() {
                    Mode::Primary => Err(grace),
                    Mode::Fallback | Mode::Durable => Ok(active),
                }
            }
            other => other,
        }
    }

    /// Seeds a stale copy of `sku`, once for a burst of requests that all found it stale.
    async fn seed_stale(&self, hot: Primary<'_>, sku: &str, epoch: i64) -> Result<(), Blocked> {
        let slot = self.seeding.join(sku);
        let result = async {
            let _turn = slot.queue.lock().await;
            if hot.settle(|r| r.stock(sku, epoch)).await?.is_some() {
                return Ok(());
            }
            self.seed(hot, sku, epoch, false).await
        }
        .await;
        self.seeding.leave(sku, slot);
        result
    }

    /// Replaces the hot copy of `sku` with SQL's counts and live holds at `epoch`.
    async fn seed(
        &self,
        hot: Primary<'_>,
        sku: &str,
        epoch: i64,
        force: bool,
    ) -> Result<(), Blocked> {
        let sql = self.tier.durable();
        let stock = self
            .tier
            .on_durable(sql.stock(sku))
            .await?
            .unwrap_or_default();
        let live = self.tier.on_durable(sql.live_holds(sku)).await?;
        let seeded = hot.settle(|r| r.seed_stock(sku, stock, &live, epoch, force));
        if seeded.await? {
            metrics::counter!(m::STOCK_SEEDED).increment(1);
            tracing::info!(
                sku,
                epoch,
                live_holds = live.len(),
                "stock copy seeded from sql"
            );
        }
        Ok(())
    }

    /// Reserves units for a user.
    pub async fn reserve(&self, req: &ReserveRequest) -> Result<(Reserved, Mode), Blocked> {
        self.tier.effects_allowed()?;
        let now = self.tier.now();
        let hold = Hold {
            // Made in the SKU's tenant, so only that tenant's confirm and release name it.
            id: format!("{}r_{}", req.sku.prefix(), uuid::Uuid::new_v4().simple()),
            sku: req.sku.as_str().to_owned(),
            user_id: req.user_id.clone(),
            quantity: req.quantity,
            state: HoldState::Held,
            expires_at: now + req.ttl_ms,
            correlation: crate::runtime::correlation::here(),
        };
        for _ in 0..ATTEMPTS {
            let active = self.pick()?;
            let mode = active.mode();
            let reply = if let Some(hot) = active.primary() {
                match hot.settle(|r| r.reserve(&hold, active.epoch)).await? {
                    ReserveReply::Reserved(stock) => {
                        return self.make_durable(hot, hold, stock).await
                    }
                    ReserveReply::Stale => {
                        self.seed_stale(hot, &hold.sku, active.epoch).await?;
                        continue;
                    }
                    other => other,
                }
            } else {
                let ask = ReserveAsk {
                    hold: hold.clone(),
                    epoch: active.epoch,
                    now: self.tier.now(),
                };
                match self.tier.on_durable(self.fallback.submit(ask)).await? {
                    ReserveReply::Stale => {
                        let _ = self.tier.refresh().await;
                        continue;
                    }
                    other => other,
                }
            };
            let answer = match reply {
                ReserveReply::Reserved(stock) => Reserved::Reserved {
                    id: hold.id,
                    expires_at: hold.expires_at,
                    remaining: stock.available(),
                },
                ReserveReply::AlreadyReserved(id) => Reserved::AlreadyReserved { id },
                ReserveReply::OutOfStock(stock) => Reserved::OutOfStock {
                    remaining: stock.map_or(0, |s| s.available()),
                },
                ReserveReply::Stale => unreachable!("handled above"),
            };
            return Ok((answer, mode));
        }
        Err(Blocked::EpochChanging)
    }

    /// Writes a hold Redis granted to SQL before answering; undoes it on Redis if SQL refuses
    /// it (SQL's counts say it does not fit) or the write fails.
    async fn make_durable(
        &self,
        hot: Primary<'_>,
        hold: Hold,
        stock: Stock,
    ) -> Result<(Reserved, Mode), Blocked> {
        let written = self.tier.durably(self.writer.submit(hold.clone())).await;
        if matches!(written, Ok(true)) {
            let answer = Reserved::Reserved {
                id: hold.id,
                expires_at: hold.expires_at,
                remaining: stock.available(),
            };
            return Ok((answer, Mode::Primary));
        }
        let undo = hot.call(|r| r.settle(&hold.sku, &hold.id, HoldState::Released));
        if let Err(e) = undo.await {
            tracing::warn!(error = %e, sku = %hold.sku, "refused hold not undone on the hot copy; reconcile will report it");
        }
        match written {
            Ok(_) => {
                tracing::warn!(sku = %hold.sku, "sql refused a hold redis granted: counts differ");
                Ok((Reserved::OutOfStock { remaining: 0 }, Mode::Primary))
            }
            Err(e) => Err(Blocked::database(&e)),
        }
    }

    /// Confirms (`to` = confirmed) or releases (`to` = released) reservation `id`. A confirm
    /// is a side effect, refused in safe mode; a release is not.
    pub async fn settle(&self, id: &str, to: HoldState) -> Result<(Settled, Mode), Blocked> {
        if to == HoldState::Confirmed {
            self.tier.effects_allowed()?;
        }
        let active = self.tier.active(false)?;
        let now = self.tier.now();
        let moved = self
            .tier
            .on_durable(self.tier.durable().transition(id, to, now))
            .await?;
        let mode = active.mode();
        let settled = match moved {
            Transitioned::Done(h) => {
                self.follow(&active, &h, to).await;
                Settled::Done(to)
            }
            Transitioned::Refused(h) if h.state == to => Settled::Done(to),
            Transitioned::Refused(h) if h.state == HoldState::Expired => Settled::Expired,
            Transitioned::Refused(h) if h.state == HoldState::Held => Settled::Expired,
            Transitioned::Refused(h) => Settled::Conflict(h.state),
            Transitioned::Missing => Settled::Missing,
        };
        Ok((settled, mode))
    }

    /// Makes the hot copy follow a hold that left `held` in SQL.
    async fn follow(&self, active: &Active<'_>, h: &Hold, to: HoldState) {
        if let Some(hot) = active.primary() {
            if let Err(e) = hot.call(|r| r.settle(&h.sku, &h.id, to)).await {
                tracing::warn!(error = %e, sku = %h.sku, "hot copy not settled; reconcile will report it");
            }
        }
    }

    /// The counts of `sku`, or `None` for an unknown SKU.
    pub async fn stock(&self, sku: &Key) -> Result<(Option<Stock>, Mode), Blocked> {
        let active = self.tier.active(false)?;
        let mode = active.mode();
        let sku = sku.as_str();
        let Some(hot) = active.primary() else {
            return Ok((
                self.tier.on_durable(self.tier.durable().stock(sku)).await?,
                mode,
            ));
        };
        for _ in 0..ATTEMPTS {
            match hot.settle(|r| r.stock(sku, active.epoch)).await? {
                Some(s) if s.total == 0 && s.reserved == 0 && s.confirmed == 0 => {
                    // A copy seeded for an unknown SKU: SQL says whether it exists.
                    let known = self.tier.on_durable(self.tier.durable().stock(sku)).await?;
                    return Ok((known.map(|_| s), mode));
                }
                Some(s) => return Ok((Some(s), mode)),
                None => self.seed_stale(hot, sku, active.epoch).await?,
            }
        }
        Err(Blocked::EpochChanging)
    }

    /// Sets the total stock of `sku` (creating it), unless holds and sales exceed it.
    pub async fn set_total(&self, sku: &Key, total: i64) -> Result<(TotalSet, Mode), Blocked> {
        let active = self.pick()?;
        let mode = active.mode();
        let sku = sku.as_str();
        let sql = self.tier.durable();
        let Some(hot) = active.primary() else {
            return Ok((
                match self.tier.on_durable(sql.set_total(sku, total)).await? {
                    Ok(s) => TotalSet::Set(s),
                    Err(s) => TotalSet::BelowHeld(s),
                },
                mode,
            ));
        };
        for _ in 0..ATTEMPTS {
            match hot
                .settle(|r| r.set_total(sku, total, active.epoch))
                .await?
            {
                None => self.seed_stale(hot, sku, active.epoch).await?,
                Some(Err(s)) => return Ok((TotalSet::BelowHeld(s), mode)),
                Some(Ok(s)) => {
                    return match self.tier.on_durable(sql.set_total(sku, total)).await? {
                        Ok(_) => Ok((TotalSet::Set(s), mode)),
                        Err(durable) => {
                            // SQL knows holds the copy does not: the copy is wrong, not SQL.
                            self.seed(hot, sku, active.epoch, true).await?;
                            Ok((TotalSet::BelowHeld(durable), mode))
                        }
                    };
                }
            }
        }
        Err(Blocked::EpochChanging)
    }

    /// Returns every hold past its deadline to stock; how many.
    pub async fn expire_due(&self) -> Result<u64, StoreError> {
        let sql = self.tier.durable();
        let now = self.tier.now();
        let mut n = 0;
        for id in sql.due_holds(now, self.cfg.reap_batch).await? {
            if let Transitioned::Done(h) = sql.transition(&id, HoldState::Expired, now).await? {
                if let Ok(active) = self.tier.active(false) {
                    self.follow(&active, &h, HoldState::Expired).await;
                }
                n += 1;
            }
        }
        metrics::counter!(m::HOLDS_EXPIRED).increment(n);
        Ok(n)
    }
}

impl crate::runtime::tasks::Scheduled for Arc<Reservations> {
    /// `hold_reaper`: expired holds back to stock, every `reservations.reap_every_ms`; and
    /// `reconcile`: Redis stock copies compared with SQL every `reservations.reconcile_every_ms`
    /// (reported, not fixed: `warden reconcile --fix` corrects them).
    fn schedule(&self, s: &mut crate::runtime::tasks::Scheduler) {
        let r = self.clone();
        s.every("hold_reaper", ms(self.cfg.reap_every_ms), move || {
            let r = r.clone();
            async move {
                match r.expire_due().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(expired = n, "holds returned to stock"),
                    Err(e) => tracing::warn!(error = %e, "hold reaper failed"),
                }
            }
        });
        let r = self.clone();
        s.every("reconcile", ms(self.cfg.reconcile_every_ms), move || {
            let r = r.clone();
            async move {
                if let Err(b) = r.reconcile(false).await {
                    tracing::warn!(reason = b.reason(), "reconciliation failed");
                }
            }
        });
    }
}
