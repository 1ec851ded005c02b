//! Wall time per notebook section: a report says how long each part took
//! on the machine that ran it.
use crate::report::html::{HtmlTable, html_table};
use std::time::Instant;

/// Laps of wall time, one per finished section.
///
/// ```
/// use encoder_bench::report::SectionClock;
/// let mut clock = SectionClock::start();
/// let s = clock.lap("1. Import");
/// assert!(s >= 0.0);
/// assert_eq!(clock.laps().len(), 1);
/// assert!(clock.table().0.contains("1. Import"));
/// ```
#[derive(Debug, Clone)]
pub struct SectionClock {
    last: Instant,
    laps: Vec<(String, f64)>,
}

impl SectionClock {
    /// Starts timing the first section.
    pub fn start() -> Self {
        SectionClock { last: Instant::now(), laps: Vec::new() }
    }

    /// Ends the section `name` (timed since the previous lap or the start),
    /// prints its wall time in one line and returns the seconds.
    pub fn lap(&mut self, name: &str) -> f64 {
        let s = self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        println!("section {name}: {s:.1} s wall time");
        self.laps.push((name.to_string(), s));
        s
    }

    /// The laps so far, in order.
    pub fn laps(&self) -> &[(String, f64)] {
        &self.laps
    }

    /// The laps as a table with their total.
    pub fn table(&self) -> HtmlTable {
        let mut rows: Vec<Vec<String>> = self.laps.iter().map(|(n, s)| vec![n.clone(), format!("{s:.1}")]).collect();
        rows.push(vec!["total".into(), format!("{:.1}", self.laps.iter().map(|l| l.1).sum::<f64>())]);
        HtmlTable(html_table(&["section".into(), "wall s".into()], &rows))
    }
}
