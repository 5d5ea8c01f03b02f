//! Schedules: cron-driven runs of scheduled rules; [`fires`] says when each one fires.

pub mod fires;
