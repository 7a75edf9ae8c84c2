//! Lock groups: all or nothing over 1–64 keys. Members are taken one by one in sorted key
//! order (after a refusal, the member that refused goes first); on the first busy key the
//! group releases what it took and waits holding nothing, so no two groups can deadlock. Only once
//! every member is held is the group recorded (durably, in SQL) and answered, so no answer
//! reports a partial group. The acquire runs as a task of its own: a client that disconnects
//! mid-acquire cannot stop it halfway, and a group granted to nobody is released at once.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::deadlock::Wait;
use super::{acquired, wait_for, AcquireRequest, Acquired, Ask, Locks, LostReason, Said, Touch};
use crate::key::Key;
use crate::store::lock_group::GroupRecord;
use crate::store::{GroupReply, LeaseAsk};
use crate::tier::{Blocked, Mode};

/// Most keys in a group.
pub const MAX_GROUP_KEYS: usize = 64;

/// One key of a group request.
#[derive(Debug, Clone)]
pub struct Member {
    /// The key.
    pub key: Key,
    /// A shared lease (else exclusive).
    pub shared: bool,
}

/// A new lock-group id of `tenant` (`lg_` and 32 hex digits: 128 random bits). Without
/// randomness from the system nothing can be granted safely: a safe block (logged), never a
/// refusal of the caller's input.
pub fn new_group_id(tenant: &str) -> Result<Key, Blocked> {
    let mut raw = [0u8; 16];
    if let Err(e) = getrandom::fill(&mut raw) {
        tracing::error!(error = %e, "no randomness for a lock-group id");
        return Err(Blocked::DatabaseUnavailable);
    }
    Key::scoped(tenant, &format!("lg_{}", hex::encode(raw))).map_err(|e| {
        tracing::error!(error = %e, "a lock-group id that is no key");
        Blocked::DatabaseUnavailable
    })
}

/// A validated group acquire: members with distinct keys, 1..=[`MAX_GROUP_KEYS`].
#[derive(Debug, Clone)]
pub struct GroupRequest {
    /// The group's id, as stored (a key of the caller's tenant).
    pub id: Key,
    /// Holder identity.
    pub owner: String,
    /// Lease length of every member.
    pub ttl_ms: i64,
    /// How long to wait for the whole group.
    pub wait_ms: i64,
    /// The members.
    pub members: Vec<Member>,
    /// Rank when the group's wait closes a deadlock: the lowest loses.
    pub deadlock_priority: i64,
}

/// One held member, as answered and recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The key as its tenant named it.
    #[serde(rename = "k")]
    pub key: String,
    /// Its fencing token.
    #[serde(rename = "t")]
    pub token: i64,
    /// Whether the lease is shared.
    #[serde(rename = "s")]
    pub shared: bool,
    /// Whether the key is a tree key (`tree: true`).
    #[serde(rename = "tr", default, skip_serializing_if = "std::ops::Not::not")]
    pub tree: bool,
}

impl Held {
    /// The member's key, of the tenant of group `id`.
    fn key_in(&self, id: &Key) -> Option<Key> {
        let key = id.sibling(&self.key).ok()?;
        if self.tree {
            key.into_tree().ok()
        } else {
            Some(key)
        }
    }
}

/// The answer to a group acquire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupAcquired {
    /// Every member is held.
    Granted {
        /// Members in key order.
        members: Vec<Held>,
        /// The earliest member expiry, epoch ms.
        expires_at: i64,
        /// Tier that granted them.
        mode: Mode,
    },
    /// A member was held by another owner for the whole wait; nothing is held.
    Busy {
        /// The key that was busy (as its tenant named it).
        blocked_at: String,
        /// Who held it.
        blocked_by: String,
        /// When a retry may succeed, ms.
        retry_after_ms: i64,
    },
    /// No tier may grant now; nothing is held.
    Blocked(Blocked),
    /// The group's wait closed a cycle of waiting owners and it was chosen as the victim;
    /// nothing of the group is held (the owner's other locks stay held).
    Deadlock {
        /// The cycle: each owner waiting for a key the next one holds.
        cycle: Vec<super::CycleStep>,
    },
}

/// The members one pass has taken so far.
struct Taking {
    /// Every member held, the owner's earlier leases included.
    taken: Vec<Held>,
    /// Those this pass granted: the only ones a refusal gives back.
    fresh: Vec<Held>,
    /// The earliest member expiry.
    expires_at: i64,
    /// The tier of the last grant.
    mode: Mode,
}

impl Default for Taking {
    fn default() -> Self {
        Self {
            taken: Vec::new(),
            fresh: Vec::new(),
            expires_at: i64::MAX,
            mode: Mode::Primary,
        }
    }
}

impl Taking {
    fn add(&mut self, m: &Member, g: &super::Grant) {
        let held = Held {
            key: m.key.name().to_owned(),
            token: g.token,
            shared: g.shared,
            tree: m.key.is_tree(),
        };
        if g.fresh {
            self.fresh.push(held.clone());
        }
        self.taken.push(held);
        self.expires_at = self.expires_at.min(g.expires_at);
        self.mode = g.mode;
    }

    /// The answer once every member is held: members in key order.
    fn granted(mut self) -> GroupAcquired {
        self.taken.sort_by(|a, b| a.key.cmp(&b.key));
        GroupAcquired::Granted {
            members: self.taken,
            expires_at: self.expires_at,
            mode: self.mode,
        }
    }
}

impl Locks {
    /// Acquires a group (see the module's note), in a task that finishes whatever happens to
    /// the caller.
    pub async fn acquire_group(self: &Arc<Self>, req: GroupRequest) -> GroupAcquired {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let locks = self.clone();
        tokio::spawn(async move {
            let answer = locks.take_group(&req).await;
            if let Err(GroupAcquired::Granted { members, .. }) = tx.send(answer) {
                tracing::info!(
                    group = req.id.name(),
                    "group granted to a caller that left; released"
                );
                locks.release_members(&req.id, &req.owner, &members).await;
                let _ = locks
                    .tier
                    .durably(locks.tier.durable().drop_group(req.id.as_str()))
                    .await;
            }
        });
        rx.await
            .unwrap_or(GroupAcquired::Blocked(Blocked::EpochChanging))
    }

    async fn take_group(&self, req: &GroupRequest) -> GroupAcquired {
        let poll = self.poll;
        let retry_in = |answer: &GroupAcquired| match answer {
            GroupAcquired::Busy { retry_after_ms, .. } => Some(wait_for(*retry_after_ms, poll)),
            GroupAcquired::Blocked(b) => b.wait_out(poll),
            GroupAcquired::Granted { .. } | GroupAcquired::Deadlock { .. } => None,
        };
        let waiting = super::deadlock::Waiting::new(self.tier.now());
        let first = req.members[0].key.as_str();
        // The member that refused the last pass is tried first on the next, so a group that
        // waits for a busy key does not hold (even briefly) the keys before it meanwhile.
        let blocker = std::sync::Mutex::new(0usize);
        let answer = self
            .waiters
            .in_line(
                first,
                req.wait_ms,
                || self.try_waiting_group(req, &blocker, &waiting),
                retry_in,
            )
            .await;
        if let Some(m) = req.members.first() {
            let wait = Wait {
                key: &m.key,
                owner: &req.owner,
                priority: req.deadlock_priority,
            };
            self.end_wait(wait, &waiting).await;
        }
        let GroupAcquired::Granted {
            members,
            expires_at,
            mode,
        } = answer
        else {
            return answer;
        };
        let record = GroupRecord {
            owner: req.owner.clone(),
            members: serde_json::to_string(&members).unwrap_or_default(),
            ttl_ms: req.ttl_ms,
            expires_at,
        };
        let sql = self.tier.durable();
        if let Err(e) = self
            .tier
            .durably(sql.save_group(req.id.as_str(), &record))
            .await
        {
            tracing::warn!(error = %e, "lock group not recorded; its members are released");
            self.release_members(&req.id, &req.owner, &members).await;
            return GroupAcquired::Blocked(Blocked::database(&e));
        }
        GroupAcquired::Granted {
            members,
            expires_at,
            mode,
        }
    }

    /// One pass; for a group that waits and finds a member held, its place in the wait-for
    /// graph (waiting for that member) is recorded and checked for a deadlock.
    async fn try_waiting_group(
        &self,
        req: &GroupRequest,
        blocker: &std::sync::Mutex<usize>,
        waiting: &super::deadlock::Waiting,
    ) -> GroupAcquired {
        let answer = self.try_group(req, blocker).await;
        let GroupAcquired::Busy { blocked_by, .. } = &answer else {
            return answer;
        };
        // The member that refused the pass (a tree member's `blocked_at` may be a key above
        // or below it).
        let at = *blocker.lock().unwrap_or_else(|p| p.into_inner());
        let Some(m) = req.members.get(at) else {
            return answer;
        };
        if req.wait_ms <= 0 {
            return answer;
        }
        let wait = Wait {
            key: &m.key,
            owner: &req.owner,
            priority: req.deadlock_priority,
        };
        match self.on_busy(wait, blocked_by, waiting).await {
            Some(cycle) => GroupAcquired::Deadlock { cycle },
            None => answer,
        }
    }

    /// One pass over the members — the last pass's blocker first, then the others in key
    /// order; on a refusal, the members this pass took are released before answering. Nothing
    /// is ever waited for while holding a member, so passes in any order cannot deadlock.
    async fn try_group(
        &self,
        req: &GroupRequest,
        blocker: &std::sync::Mutex<usize>,
    ) -> GroupAcquired {
        if let Some(answer) = self.try_whole(req, blocker).await {
            return answer;
        }
        let mut taking = Taking::default();
        let lead = *blocker.lock().unwrap_or_else(|p| p.into_inner());
        let order = std::iter::once(lead).chain((0..req.members.len()).filter(|i| *i != lead));
        for i in order {
            let m = &req.members[i];
            let one = AcquireRequest {
                key: m.key.clone(),
                owner: req.owner.clone(),
                ttl_ms: req.ttl_ms,
                wait_ms: 0,
                max_hold_ms: None,
                shared: m.shared,
                deadlock_priority: 0,
            };
            let refusal = match self.try_once(&one).await {
                Acquired::Granted(g) => {
                    taking.add(m, &g);
                    continue;
                }
                Acquired::Busy {
                    retry_after_ms,
                    blocked_by,
                    blocked_at,
                } => {
                    *blocker.lock().unwrap_or_else(|p| p.into_inner()) = i;
                    GroupAcquired::Busy {
                        blocked_at: blocked_at.unwrap_or_else(|| m.key.name().to_owned()),
                        blocked_by,
                        retry_after_ms,
                    }
                }
                Acquired::Blocked(b) => GroupAcquired::Blocked(b),
                // A try that does not wait records no edge, so it is never a victim.
                Acquired::Deadlock { .. } => GroupAcquired::Blocked(Blocked::EpochChanging),
            };
            // Only what this pass granted is given back: a lease the owner held before the
            // call is not the group's to release.
            self.release_members(&req.id, &req.owner, &taking.fresh)
                .await;
            return refusal;
        }
        taking.granted()
    }

    /// The whole group in one atomic step, where the active store can take it so (Redis, every
    /// key in one slot): nothing is taken unless everything is. `None` where it cannot.
    async fn try_whole(
        &self,
        req: &GroupRequest,
        blocker: &std::sync::Mutex<usize>,
    ) -> Option<GroupAcquired> {
        if req.members.len() < 2 {
            return None;
        }
        let asks: Vec<LeaseAsk<'_>> = req
            .members
            .iter()
            .map(|m| LeaseAsk {
                shared: m.shared,
                ..LeaseAsk::exclusive(&m.key, &req.owner, req.ttl_ms)
            })
            .collect();
        let first = &req.members[0].key;
        let (said, now, mode) = match self.at_epoch(req.ttl_ms, first, Ask::Group(&asks)).await {
            Ok(said) => said,
            Err(b) => return Some(GroupAcquired::Blocked(b)),
        };
        let Said::Group(Some(reply)) = said else {
            return None;
        };
        let replies = match reply {
            GroupReply::Refused { index, reply } => {
                *blocker.lock().unwrap_or_else(|p| p.into_inner()) = index;
                return Some(match acquired(reply, now, mode) {
                    Acquired::Busy {
                        retry_after_ms,
                        blocked_by,
                        ..
                    } => GroupAcquired::Busy {
                        blocked_at: req.members.get(index)?.key.name().to_owned(),
                        blocked_by,
                        retry_after_ms,
                    },
                    _ => GroupAcquired::Blocked(Blocked::EpochChanging),
                });
            }
            GroupReply::Taken(replies) => replies,
        };
        let mut taking = Taking::default();
        let mut refused = None;
        for (m, r) in req.members.iter().zip(replies) {
            match acquired(r, now, mode) {
                Acquired::Granted(g) => taking.add(m, &g),
                Acquired::Blocked(b) => refused = Some(b),
                _ => refused = Some(Blocked::EpochChanging),
            }
        }
        if let Some(b) = refused {
            self.release_members(&req.id, &req.owner, &taking.fresh)
                .await;
            return Some(GroupAcquired::Blocked(b));
        }
        Some(taking.granted())
    }

    /// Releases `members` (keys of `id`'s tenant); a failure is logged, and the lease lapses.
    async fn release_members(&self, id: &Key, owner: &str, members: &[Held]) {
        for m in members {
            let Some(key) = m.key_in(id) else {
                continue;
            };
            if let Err(b) = self.release(&key, owner, m.token).await {
                tracing::warn!(reason = b.reason(), "group member not released; it expires");
            }
        }
    }

    /// The recorded group `id` of `owner`: its members and lease length, or why it cannot be
    /// touched.
    async fn recorded(
        &self,
        id: &Key,
        owner: &str,
    ) -> Result<Result<(Vec<Held>, i64), Touch<()>>, Blocked> {
        let sql = self.tier.durable();
        let found = self.tier.on_durable(sql.group(id.as_str())).await?;
        let now = self.tier.now();
        Ok(match found {
            Some(g) if g.owner != owner => Err(Touch::NotOwner),
            Some(g) if g.expires_at > now => Ok((
                serde_json::from_str(&g.members).unwrap_or_default(),
                g.ttl_ms,
            )),
            _ => Err(Touch::Lost(LostReason::Expired)),
        })
    }

    /// Extends every member of group `id` to `ttl_ms` (by default, the group's own) from now.
    /// If any member is lost, the others are released too and the answer is that member's
    /// `lock_lost`: a group is never left partly held.
    pub async fn extend_group(
        &self,
        id: &Key,
        owner: &str,
        ttl_ms: Option<i64>,
    ) -> Result<(Touch<i64>, Mode), Blocked> {
        self.tier.effects_allowed()?;
        let mode = self.tier.active(false)?.mode();
        let (members, own_ttl) = match self.recorded(id, owner).await? {
            Ok(m) => m,
            Err(refused) => return Ok((refused.map_done(), mode)),
        };
        let ttl_ms = ttl_ms.unwrap_or(own_ttl);
        let mut expires_at = i64::MAX;
        for (i, m) in members.iter().enumerate() {
            let Some(key) = m.key_in(id) else {
                continue;
            };
            let (touch, _) = self.extend(&key, owner, m.token, ttl_ms).await?;
            match touch {
                Touch::Done(at) => expires_at = expires_at.min(at),
                refused => {
                    let others: Vec<Held> = members
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .map(|(_, m)| m.clone())
                        .collect();
                    self.release_members(id, owner, &others).await;
                    let sql = self.tier.durable();
                    let _ = self.tier.on_durable(sql.drop_group(id.as_str())).await;
                    return Ok((refused, mode));
                }
            }
        }
        let sql = self.tier.durable();
        self.tier
            .on_durable(sql.extend_group(id.as_str(), expires_at))
            .await?;
        Ok((Touch::Done(expires_at), mode))
    }

    /// Releases every member of group `id` and forgets it.
    pub async fn release_group(&self, id: &Key, owner: &str) -> Result<(Touch<()>, Mode), Blocked> {
        let mode = self.tier.active(false)?.mode();
        let members = match self.recorded(id, owner).await? {
            Ok((m, _)) => m,
            Err(refused) => return Ok((refused, mode)),
        };
        self.release_members(id, owner, &members).await;
        let sql = self.tier.durable();
        self.tier.on_durable(sql.drop_group(id.as_str())).await?;
        Ok((Touch::Done(()), mode))
    }
}

impl Touch<()> {
    /// The same refusal as an extend's answer.
    fn map_done(self) -> Touch<i64> {
        match self {
            Touch::Done(()) => Touch::Done(0),
            Touch::NotOwner => Touch::NotOwner,
            Touch::Lost(why) => Touch::Lost(why),
        }
    }
}
