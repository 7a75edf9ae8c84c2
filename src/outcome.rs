//! Terminal states have one owner: every answer a domain operation can give is a variant of
//! its outcome enum, which names the answer's `state` and its HTTP status here, once. The HTTP
//! layer maps nothing by hand, and the OpenAPI document lists each operation's statuses from
//! the same table ([`Terminal::STATES`]).

/// One terminal state an operation can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateDoc {
    /// The `state` field of the answer.
    pub state: &'static str,
    /// The HTTP status it is answered with.
    pub status: u16,
    /// What it means, for the OpenAPI document.
    pub meaning: &'static str,
    /// Whether it is answered as an `application/problem+json` document (a refusal that also
    /// carries `state`) rather than a plain JSON answer.
    pub problem: bool,
}

impl StateDoc {
    /// A state answered as a plain JSON answer.
    pub const fn json(state: &'static str, status: u16, meaning: &'static str) -> Self {
        Self {
            state,
            status,
            meaning,
            problem: false,
        }
    }

    /// A state answered as a problem document.
    pub const fn problem(state: &'static str, status: u16, meaning: &'static str) -> Self {
        Self {
            problem: true,
            ..Self::json(state, status, meaning)
        }
    }
}

/// The outcome of a domain operation: its terminal state and status.
pub trait Terminal {
    /// Every state this outcome can take.
    const STATES: &'static [StateDoc];

    /// This outcome's state.
    fn state(&self) -> &'static str;

    /// This outcome's HTTP status, from [`Terminal::STATES`]. Each outcome's tests check that
    /// every variant's state is listed there.
    fn status(&self) -> u16 {
        let state = self.state();
        Self::STATES
            .iter()
            .find(|d| d.state == state)
            .map_or(500, |d| d.status)
    }
}

/// Asserts that every example's state is listed in its [`Terminal::STATES`] (for the tests of
/// each outcome enum: one example per variant).
#[cfg(test)]
pub(crate) fn assert_listed<T: Terminal>(examples: &[T]) {
    for e in examples {
        let state = e.state();
        assert!(
            T::STATES.iter().any(|d| d.state == state),
            "{state} is not listed"
        );
    }
    for d in T::STATES {
        assert!(
            examples.iter().any(|e| e.state() == d.state),
            "{} has no example",
            d.state
        );
    }
}
