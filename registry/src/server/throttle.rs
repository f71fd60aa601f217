//! `PasswordThrottle`: a budget of password checks per client address (GCRA, `governor`),
//! so that guessing passwords, or just burning the server's CPU on bcrypt, runs dry fast.

use std::{
    net::{IpAddr, Ipv6Addr},
    num::NonZeroU32,
    time::Duration,
};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock as _};

/// Addresses remembered before the limiter forgets those whose budget is full again.
const TRIM_ABOVE: usize = 10_000;

#[derive(Debug)]
pub struct PasswordThrottle {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl PasswordThrottle {
    /// `per_minute` checks per address, all of them at once if need be; `None` for 0.
    pub fn new(per_minute: u32) -> Option<PasswordThrottle> {
        let per_minute = NonZeroU32::new(per_minute)?;
        Some(PasswordThrottle {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
        })
    }

    /// Spend one check of `client`'s budget, or say how long until there is one.
    pub fn spend(&self, client: IpAddr) -> Result<(), Duration> {
        let key = family(client);
        let outcome = self.limiter.check_key(&key);
        if self.limiter.len() > TRIM_ABOVE {
            self.limiter.retain_recent();
        }
        outcome.map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }
}

/// The unit a client controls: an IPv4 address, or an IPv6 /64 (one host usually holds a
/// whole /64, and would otherwise get a fresh budget per address).
fn family(client: IpAddr) -> IpAddr {
    match client.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !(u64::MAX as u128);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_per_address_then_a_wait() {
        let throttle = PasswordThrottle::new(3).unwrap();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "::ffff:192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(throttle.spend(a).is_ok());
        }
        let wait = throttle.spend(a).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(
            throttle.spend(b).is_ok(),
            "another address has its own budget"
        );
        let host: IpAddr = "2001:db8::1".parse().unwrap();
        let same_host: IpAddr = "2001:db8::2".parse().unwrap();
        for _ in 0..3 {
            throttle.spend(host).unwrap();
        }
        assert!(
            throttle.spend(same_host).is_err(),
            "one /64 shares a budget"
        );
        assert!(PasswordThrottle::new(0).is_none());
    }
}
