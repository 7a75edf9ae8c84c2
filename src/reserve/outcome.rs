//! The terminal states of the inventory and reservation operations, each with its HTTP
//! status, in one place.

use super::{Reserved, Settled, TotalSet};
use crate::outcome::{StateDoc, Terminal};
use crate::store::reserve::{HoldState, Stock};

/// The answer to a read of a SKU's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockRead {
    /// Its counts.
    Found(Stock),
    /// No stock was ever set for it.
    Unknown,
}

impl From<Option<Stock>> for StockRead {
    fn from(stock: Option<Stock>) -> Self {
        stock.map_or(Self::Unknown, Self::Found)
    }
}

impl Terminal for StockRead {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "stock",
            200,
            "`total`, `available`, `reserved`, `confirmed` (always adding up)",
        ),
        StateDoc::problem("unknown_sku", 404, "no stock was ever set for this SKU"),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Found(_) => "stock",
            Self::Unknown => "unknown_sku",
        }
    }
}

const CONFIRMED: StateDoc = StateDoc::json("confirmed", 200, "the hold is sold (now or before)");
const RELEASED: StateDoc = StateDoc::json("released", 200, "the units are back in stock");
const EXPIRED: StateDoc = StateDoc::problem(
    "expired",
    410,
    "the deadline passed first: the units went back to stock",
);
const ALREADY_CONFIRMED: StateDoc =
    StateDoc::problem("already_confirmed", 409, "the hold was confirmed before");
const ALREADY_RELEASED: StateDoc =
    StateDoc::problem("already_released", 409, "the hold was released before");
const UNKNOWN: StateDoc = StateDoc::problem("unknown_reservation", 404, "no such reservation");

impl Terminal for Reserved {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json("reserved", 201, "units held until `expires_at`"),
        StateDoc::json("out_of_stock", 409, "not enough units; `remaining`"),
        StateDoc::json(
            "already_reserved",
            409,
            "the user holds this SKU; the live `reservation_id`",
        ),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Reserved { .. } => "reserved",
            Self::OutOfStock { .. } => "out_of_stock",
            Self::AlreadyReserved { .. } => "already_reserved",
        }
    }
}

impl Terminal for Settled {
    const STATES: &'static [StateDoc] = &[
        CONFIRMED,
        RELEASED,
        EXPIRED,
        ALREADY_CONFIRMED,
        ALREADY_RELEASED,
        UNKNOWN,
    ];

    fn state(&self) -> &'static str {
        let doc = match self {
            Self::Done(HoldState::Confirmed) => CONFIRMED,
            Self::Done(_) => RELEASED,
            Self::Expired => EXPIRED,
            Self::Conflict(HoldState::Confirmed) => ALREADY_CONFIRMED,
            Self::Conflict(_) => ALREADY_RELEASED,
            Self::Missing => UNKNOWN,
        };
        doc.state
    }
}

impl Settled {
    /// The states a confirm answers.
    pub const CONFIRM_STATES: &'static [StateDoc] =
        &[CONFIRMED, EXPIRED, ALREADY_RELEASED, UNKNOWN];
    /// The states a release answers.
    pub const RELEASE_STATES: &'static [StateDoc] =
        &[RELEASED, EXPIRED, ALREADY_CONFIRMED, UNKNOWN];
}

impl Terminal for TotalSet {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json("stock", 200, "the stock record after the change"),
        StateDoc::problem(
            "total_below_held",
            409,
            "holds and sales exceed the requested total; nothing changed",
        ),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Set(_) => "stock",
            Self::BelowHeld(_) => "total_below_held",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::assert_listed;

    #[test]
    fn every_reservation_outcome_has_a_listed_state_and_status() {
        let reserved = [
            Reserved::Reserved {
                id: "r".into(),
                expires_at: 1,
                remaining: 1,
            },
            Reserved::OutOfStock { remaining: 0 },
            Reserved::AlreadyReserved { id: "r".into() },
        ];
        assert_listed(&reserved);
        assert_eq!(reserved.map(|r| r.status()), [201, 409, 409]);
        let settled = [
            Settled::Done(HoldState::Confirmed),
            Settled::Done(HoldState::Released),
            Settled::Expired,
            Settled::Conflict(HoldState::Confirmed),
            Settled::Conflict(HoldState::Released),
            Settled::Missing,
        ];
        assert_listed(&settled);
        assert_eq!(settled.map(|s| s.status()), [200, 200, 410, 409, 409, 404]);
        let stock = Stock::default();
        assert_listed(&[TotalSet::Set(stock), TotalSet::BelowHeld(stock)]);
        assert_listed(&[StockRead::Found(stock), StockRead::Unknown]);
        assert_eq!(StockRead::from(None).status(), 404);
    }
}
