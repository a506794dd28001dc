//! Cron schedules and times from clients: cron expressions (with the next fire time),
//! absolute times, calendar dates, and `cron.add` params as a whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringgate::{
    calendar,
    cron::{job::Job, schedule},
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = 1_800_000_000_000;
    if let Ok(expr) = schedule::CronExpr::parse(text) {
        let _ = expr.next_after(now);
        let _ = expr.next_after(0);
    }
    let _ = schedule::parse_absolute_time_ms(text);
    let _ = calendar::day_of_date(text);
    let _ = schedule::default_stagger_ms(text);
    if let Ok(params) = serde_json::from_str::<serde_json::Value>(text) {
        if let Ok(mut job) = Job::create(&params, "fuzz".into(), now) {
            let _ = job.compute_next_run(now);
            let _ = job.apply_patch(&params, now);
            let _ = job.read_view();
        }
    }
});
