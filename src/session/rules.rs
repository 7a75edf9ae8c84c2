//! The session rules, decided once: how a session stands at an instant (a principal's logout
//! everywhere revokes every session of an earlier generation, whatever its row says; then its
//! expiries; then how it ended), and what a create finds at its principal's limit (room, a
//! refusal, or the oldest live sessions to end). The SQL store is handed them ([`RULES`]) and
//! applies them inside its transactions; its live-session queries write "active" again in SQL,
//! and `tests/contracts/session_rule.rs` holds them to [`standing`].

use crate::store::session::{state, OnCreate, OnLimit, SessionRow, SessionRules, Standing};

/// The rules as the store is handed them.
pub const RULES: SessionRules = SessionRules {
    standing,
    on_create,
};

/// How `row` stands at `now`.
pub fn standing(row: &SessionRow, now: i64) -> Standing {
    match row.state.as_str() {
        state::ACTIVE if row.generation < row.principal_generation => {
            Standing::Ended(state::REVOKED)
        }
        state::ACTIVE if row.idle_expires_at <= now || row.absolute_expires_at <= now => {
            Standing::Expired
        }
        state::ACTIVE => Standing::Active,
        state::EXPIRED => Standing::Expired,
        state::ROTATED => Standing::Ended(state::ROTATED),
        state::EVICTED => Standing::Ended(state::EVICTED),
        _ => Standing::Ended(state::REVOKED),
    }
}

/// What a create finds when its principal has `live` live sessions and may have `max`: room
/// while fewer than `max` live; else a refusal, or as many of the oldest ended as leave room
/// for one.
pub fn on_create(live: usize, max: i64, on_limit: OnLimit) -> OnCreate {
    let over = live as i64 - max + 1;
    match (over > 0, on_limit) {
        (false, _) => OnCreate::Admit,
        (true, OnLimit::Reject) => OnCreate::Refuse,
        (true, OnLimit::EvictOldest) => OnCreate::Evict(over as usize),
    }
}
