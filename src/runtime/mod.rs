//! Infrastructure the domain modules run on, with no rule of any capability in it: group
//! commit, per-key waiters, periodic background loops and the clock.

pub mod clock;
pub mod correlation;
pub mod group_commit;
pub mod periodic;
pub mod waiters;
