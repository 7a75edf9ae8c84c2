//! Lock groups as stored: a group's record names every key it holds and the one token they
//! share, so an extend or release reaches all of them or none.

/// A group as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// Its holder.
    pub owner: String,
    /// Its members as JSON text: `[{"k": name, "t": token, "s": shared}]`.
    pub members: String,
    /// The lease length it was granted with (an extend without one renews by it).
    pub ttl_ms: i64,
    /// When its leases run out (the earliest member expiry), epoch ms.
    pub expires_at: i64,
}
