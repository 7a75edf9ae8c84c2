//! Inventory and holds as both tiers store them. Counts only move by whole holds: a hold adds
//! its quantity to `reserved` once, and leaves it once (to `confirmed`, or back to stock).

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
