#![allow(missing_docs)]
use herald_core::{Scheduler, Tick};
use std::time::Instant;
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1_000_000);
    let mut x = 0x9E3779B97F4A7C15u64;
    let mut r = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let deadlines: Vec<u64> = (0..n).map(|_| r() % 3_600_000).collect();
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (r() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let mut s = Scheduler::new();
    let t = Instant::now();
    let keys: Vec<_> = deadlines
        .iter()
        .enumerate()
        .map(|(i, &d)| s.insert_at(Tick::from_millis(d), i as u64))
        .collect();
    let ti = t.elapsed();
    let t = Instant::now();
    for &i in &order[..n / 2] {
        s.cancel(keys[i]).unwrap();
    }
    let tc = t.elapsed();
    let t = Instant::now();
    let mut out = Vec::with_capacity(4096);
    let mut cnt = 0;
    let mut maxcall = std::time::Duration::ZERO;
    loop {
        out.clear();
        let c0 = Instant::now();
        let k = s.poll_expired(Tick::from_millis(3_600_001), &mut out, 1024);
        let el = c0.elapsed();
        if el > std::time::Duration::from_micros(800) {
            eprintln!("slow call #{} {:?} fired {}", cnt, el, k);
        }
        maxcall = maxcall.max(el);
        cnt += k;
        if k < 1024 {
            break;
        }
    }
    let td = t.elapsed();
    assert_eq!(cnt, n - n / 2);
    println!(
        "n={n} insert {:.1} ns, cancel {:.1} ns, expire {:.1} ns/expired, max poll call {:?}",
        ti.as_nanos() as f64 / n as f64,
        tc.as_nanos() as f64 / (n / 2) as f64,
        td.as_nanos() as f64 / (n - n / 2) as f64,
        maxcall
    );
}
