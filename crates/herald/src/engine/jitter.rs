//! A small random source for jitter (retry delays, the moments nodes look
//! for runs to reserve): xorshift64, not for secrets.

/// Uniform random numbers for spreading things out in time.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    /// A sequence from `seed` (any value).
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// A sequence seeded from the operating system (a fixed seed if it has
    /// none to give).
    pub(crate) fn from_entropy() -> Self {
        Self::new(getrandom::u64().unwrap_or(0x9e37_79b9_7f4a_7c15))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[every / 2, every / 2 + every)`: a period around `every`.
    pub(crate) fn around(&mut self, every: u64) -> u64 {
        every / 2 + self.next() % every.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_stay_in_their_ranges_and_vary() {
        let mut j = Jitter::new(7);
        let periods: Vec<u64> = (0..1_000).map(|_| j.around(250)).collect();
        assert!(periods.iter().all(|&p| (125..375).contains(&p)));
        assert!(periods.iter().min() < Some(&150) && periods.iter().max() > Some(&350));
        assert!(
            (0..1_000)
                .map(|_| j.unit())
                .all(|u| (0.0..1.0).contains(&u))
        );
        assert_eq!(Jitter::new(0).around(0), 0, "a zero period stays zero");
    }
}
