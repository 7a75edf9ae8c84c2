//! Fencing tokens: `epoch << 32 | counter`, below 2^53. Every grant follows this arithmetic;
//! the stores draw the counter inside their atomic grant step (the Lua script on Redis, one
//! statement on SQL) with the limits defined here, so a token drawn later in an epoch, or in a
//! later epoch, is always larger (G1).

/// Bits of a token that hold the counter.
const COUNTER_BITS: u32 = 32;

/// The last counter value of an epoch: a grant that would need the next one must wait for a
/// new epoch instead, or its token would spill into the next epoch's range.
pub const COUNTER_MAX: i64 = (1 << COUNTER_BITS) - 1;

/// Tokens (and other integers answered as JSON numbers) stay below 2^53, so every JSON client
/// reads them exactly.
pub const MAX_TOKEN: i64 = (1 << 53) - 1;

/// First token of an epoch: `epoch << 32`. Counters add to it, so every token of a later
/// epoch is larger than every token of an earlier one.
pub fn token_base(epoch: i64) -> i64 {
    epoch << COUNTER_BITS
}

/// Splits a token into `(epoch, counter)`.
pub fn token_parts(token: i64) -> (i64, i64) {
    (token >> COUNTER_BITS, token & COUNTER_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_order_by_epoch_then_counter_and_split_back() {
        let last_of_3 = token_base(3) + COUNTER_MAX;
        assert!(token_base(4) + 1 > last_of_3);
        assert_eq!(token_parts(last_of_3), (3, COUNTER_MAX));
        assert_eq!(token_parts(token_base(7) + 5), (7, 5));
        // The last epoch whose tokens stay below 2^53.
        assert!(token_base((1 << 21) - 1) + COUNTER_MAX <= MAX_TOKEN);
        assert!(token_base(1 << 21) > MAX_TOKEN);
    }

    #[test]
    fn the_redis_script_stops_at_the_same_counter() {
        let lua = include_str!("store/redis/lua/token.lua");
        assert!(lua.contains(&format!(">= {COUNTER_MAX} then")), "{lua}");
    }
}
