//! Inventory and holds as both tiers store them. Counts only move by whole holds: a hold adds
//! its quantity to `reserved` once, and leaves it once (to `confirmed`, or back to stock).

use std::future::Future;

use crate::store::StoreError;

/// The hot copy of each SKU's stock and live holds (the Redis tier): one atomic step per
/// reserve, valid only in the epoch it was seeded from SQL in.
pub trait StockCopy: Send + Sync {
    /// The atomic reserve step at `epoch`.
    fn reserve(
        &self,
        h: &Hold,
        epoch: i64,
    ) -> impl Future<Output = Result<ReserveReply, StoreError>> + Send;

    /// Ends hold `id` of `sku` on the copy (`to`: confirmed, released or expired); `false` if
    /// it was not live here.
    fn settle(
        &self,
        sku: &str,
        id: &str,
        to: HoldState,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Replaces the copy of `sku` with `stock` and `live` holds from SQL, marked with `epoch`;
    /// with `force` false, only if the copy is not at `epoch` yet.
    fn seed_stock(
        &self,
        sku: &str,
        stock: Stock,
        live: &[Hold],
        epoch: i64,
        force: bool,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Sets the total at `epoch`: `Ok(None)` when the copy is stale, `Ok(Some(Err(c)))` when
    /// live holds and sales exceed it.
    fn set_total(
        &self,
        sku: &str,
        total: i64,
        epoch: i64,
    ) -> impl Future<Output = Result<Option<Result<Stock, Stock>>, StoreError>> + Send;

    /// The counts of `sku` on the copy, if it was seeded at `epoch`.
    fn stock(
        &self,
        sku: &str,
        epoch: i64,
    ) -> impl Future<Output = Result<Option<Stock>, StoreError>> + Send;
}

/// The counts of one SKU. `available` is derived, so the four always add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stock {
    /// Units for sale.
    pub total: i64,
    /// Units held by live holds.
    pub reserved: i64,
    /// Units sold.
    pub confirmed: i64,
}

impl Stock {
    /// Units that can still be held.
    pub fn available(&self) -> i64 {
        self.total - self.reserved - self.confirmed
    }
}

/// Lifecycle of a hold; it leaves `Held` exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldState {
    /// Units set aside until `expires_at`.
    Held,
    /// Paid: the units are sold.
    Confirmed,
    /// Given back by the buyer.
    Released,
    /// Not paid in time: given back by the reaper.
    Expired,
}

impl HoldState {
    /// Name stored and answered.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Confirmed => "confirmed",
            Self::Released => "released",
            Self::Expired => "expired",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Held, Self::Confirmed, Self::Released, Self::Expired]
            .into_iter()
            .find(|h| h.as_str() == s)
    }
}

/// One hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// Reservation id.
    pub id: String,
    /// SKU.
    pub sku: String,
    /// Buyer.
    pub user_id: String,
    /// Units.
    pub quantity: i64,
    /// State.
    pub state: HoldState,
    /// Deadline for confirmation, epoch ms.
    pub expires_at: i64,
    /// The correlation of the request that made it.
    pub correlation: crate::runtime::correlation::Correlation,
}

/// The answer of an atomic reserve step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveReply {
    /// Held; the counts after it.
    Reserved(Stock),
    /// The user already has a live hold on this SKU (its id).
    AlreadyReserved(String),
    /// Not enough available (also for an unknown SKU); the counts, if the SKU exists.
    OutOfStock(Option<Stock>),
    /// The store is not at the caller's epoch (Redis: its copy must be reseeded from SQL).
    Stale,
}

/// The answer of a hold transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transitioned {
    /// The hold moved; as it now stands.
    Done(Hold),
    /// The hold was not `Held` (or its deadline decided otherwise); as it stands.
    Refused(Hold),
    /// No such hold.
    Missing,
}

/// One reserve asked of the fallback tier.
#[derive(Debug, Clone)]
pub struct ReserveAsk {
    /// The hold to make.
    pub hold: Hold,
    /// The epoch the caller acts in (a reserve at another epoch answers `Stale`).
    pub epoch: i64,
    /// The caller's clock (database time).
    pub now: i64,
}
