//! tqdm-style progress bars (built on `indicatif`) that show in a terminal and
//! in a Jupyter cell run by the evcxr kernel.
//!
//! A frame reads like tqdm's default one:
//!
//! ```text
//! epoch 1/3: 100%|████████████████████| 2875/2875 [06:52<00:00,  6.97it/s, loss=1.58]
//! ```
//!
//! indicatif draws nothing when stderr is not a terminal, and that is the case
//! in a notebook. Worse, evcxr forwards the output of user code to Jupyter one
//! complete line at a time, so tqdm's trick of redrawing a line after `\r`
//! shows nothing until the bar ends. [`ProgressMode::Notebook`] therefore
//! prints whole frames as ordinary lines on stdout, and only few: a saved
//! notebook is a report, so a bar prints a frame only once it has run for
//! [`NOTEBOOK_INTERVAL`] (a heartbeat for long runs) and, unless made with
//! [`Progress::summarised`], its final frame. Fine-tuning's epoch and
//! validation bars are summarised by the one epoch line `fit` prints, so an
//! epoch shorter than the interval leaves exactly one line.
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressState, ProgressStyle, TermLike};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Width in characters of a notebook frame; wide enough for the bar, narrow
/// enough not to wrap in a default JupyterLab cell.
pub const NOTEBOOK_WIDTH: u16 = 100;

/// Least time between two notebook lines, counted from the bar's start: a bar
/// that ends sooner prints no frame before its last.
pub const NOTEBOOK_INTERVAL: Duration = Duration::from_secs(600);

/// Upper bound on how often a notebook bar is rendered at all; rendering is
/// cheap but there is no point in doing it faster than lines can be printed.
const NOTEBOOK_HZ: u8 = 4;

/// Where and how progress bars are drawn.
///
/// Parses from and serialises to `"auto"`, `"terminal"`, `"notebook"` and `"quiet"`.
///
/// ```
/// use encoder_bench::train::ProgressMode;
/// let mode: ProgressMode = "notebook".parse()?;
/// assert_eq!(mode, ProgressMode::Notebook);
/// assert_eq!(ProgressMode::Quiet.resolve(), ProgressMode::Quiet);
/// assert_ne!(ProgressMode::Auto.resolve(), ProgressMode::Auto);
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressMode {
    /// [`Terminal`](Self::Terminal) when stderr is a terminal; otherwise
    /// [`Notebook`](Self::Notebook) inside a Jupyter kernel (the evcxr runtime
    /// sets `EVCXR_IS_RUNTIME`, Jupyter sets `JPY_PARENT_PID`); otherwise
    /// [`Quiet`](Self::Quiet), so that logs and test output stay clean.
    #[default]
    Auto,
    /// A live bar redrawn in place on stderr, like tqdm in a shell.
    Terminal,
    /// Frames printed as whole lines on stdout, at most one per [`NOTEBOOK_INTERVAL`].
    Notebook,
    /// Nothing is drawn.
    Quiet,
}

impl ProgressMode {
    /// What [`Auto`](Self::Auto) stands for here and now; other modes are returned unchanged.
    pub fn resolve(self) -> ProgressMode {
        match self {
            ProgressMode::Auto if io::stderr().is_terminal() => ProgressMode::Terminal,
            ProgressMode::Auto if in_jupyter() => ProgressMode::Notebook,
            ProgressMode::Auto => ProgressMode::Quiet,
            other => other,
        }
    }
}

fn in_jupyter() -> bool {
    std::env::var_os("EVCXR_IS_RUNTIME").is_some() || std::env::var_os("JPY_PARENT_PID").is_some()
}

impl FromStr for ProgressMode {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(ProgressMode::Auto),
            "terminal" => Ok(ProgressMode::Terminal),
            "notebook" => Ok(ProgressMode::Notebook),
            "quiet" => Ok(ProgressMode::Quiet),
            _ => Err(crate::Error::invalid("progress", format!("`{s}` is not one of auto, terminal, notebook, quiet"))),
        }
    }
}

impl fmt::Display for ProgressMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProgressMode::Auto => "auto",
            ProgressMode::Terminal => "terminal",
            ProgressMode::Notebook => "notebook",
            ProgressMode::Quiet => "quiet",
        })
    }
}

/// A tqdm-like progress bar over a known number of steps.
///
/// ```
/// use encoder_bench::train::{Progress, ProgressMode};
/// let bar = Progress::new(3, "train", ProgressMode::Quiet);
/// for step in 0..3 {
///     bar.inc(1);
///     bar.set_postfix(&format!("loss={:.2}", 1.0 / (step + 1) as f64));
/// }
/// bar.finish();
/// assert_eq!(bar.position(), 3);
/// ```
pub struct Progress {
    bar: ProgressBar,
    /// Set in notebook mode, to print the last frame however recent the previous line.
    notebook: Option<NotebookSink>,
    /// Whether `finish` prints the final frame in notebook mode.
    final_frame: AtomicBool,
    /// Steps done before this bar started (a resumed epoch); they do not count in the rate.
    initial: Arc<AtomicU64>,
    finished: AtomicBool,
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Progress")
            .field("position", &self.bar.position())
            .field("length", &self.bar.length())
            .field("notebook", &self.notebook.is_some())
            .finish()
    }
}

impl Progress {
    /// A bar of `total` steps labelled `desc`, drawn as `mode` says
    /// (after [`ProgressMode::resolve`]).
    pub fn new(total: u64, desc: &str, mode: ProgressMode) -> Progress {
        match mode.resolve() {
            ProgressMode::Notebook => {
                Progress::with_notebook_sink(total, desc, NotebookSink::new(Box::new(io::stdout()), NOTEBOOK_INTERVAL))
            }
            ProgressMode::Terminal => Progress::build(total, desc, ProgressDrawTarget::stderr(), None),
            _ => Progress::build(total, desc, ProgressDrawTarget::hidden(), None),
        }
    }

    fn with_notebook_sink(total: u64, desc: &str, sink: NotebookSink) -> Progress {
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(sink.clone()), NOTEBOOK_HZ);
        Progress::build(total, desc, target, Some(sink))
    }

    fn build(total: u64, desc: &str, target: ProgressDrawTarget, notebook: Option<NotebookSink>) -> Progress {
        let initial = Arc::new(AtomicU64::new(0));
        let bar = ProgressBar::with_draw_target(Some(total), target)
            .with_style(tqdm_style(initial.clone()))
            .with_prefix(if desc.is_empty() { String::new() } else { format!("{desc}: ") })
            // A bar dropped early (an error, a stop) shows where it stopped rather than 100%.
            .with_finish(ProgressFinish::Abandon);
        Progress { bar, notebook, initial, final_frame: AtomicBool::new(true), finished: AtomicBool::new(false) }
    }

    /// Leaves out the final frame in notebook mode, for a bar whose caller
    /// prints its own summary line (heartbeat frames of a long bar stay).
    ///
    /// ```
    /// use encoder_bench::train::{Progress, ProgressMode};
    /// let bar = Progress::new(3, "epoch 1/3", ProgressMode::Quiet).summarised();
    /// bar.inc(3);
    /// assert_eq!(bar.position(), 3);
    /// ```
    pub fn summarised(self) -> Progress {
        self.final_frame.store(false, Ordering::Relaxed);
        self
    }

    /// Starts the bar at `pos` steps already done, like tqdm's `initial=`: a
    /// resumed epoch shows its true position, and the skipped steps do not
    /// inflate the rate. Call it right after [`new`](Self::new).
    ///
    /// ```
    /// use encoder_bench::train::{Progress, ProgressMode};
    /// let bar = Progress::new(100, "epoch 2/3", ProgressMode::Quiet);
    /// bar.set_initial(40);
    /// bar.inc(1);
    /// assert_eq!(bar.position(), 41);
    /// ```
    pub fn set_initial(&self, pos: u64) {
        self.initial.store(pos, Ordering::Relaxed);
        self.bar.set_position(pos);
    }

    /// Advances the bar by `n` steps.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Shows `s` (e.g. `"loss=1.58"`) after the rate, as tqdm's `set_postfix_str`.
    pub fn set_postfix(&self, s: &str) {
        self.bar.set_message(if s.is_empty() { String::new() } else { format!(", {s}") });
    }

    /// Steps done so far.
    pub fn position(&self) -> u64 {
        self.bar.position()
    }

    /// Stops the clock and leaves the final frame visible, at the position
    /// reached (not forced to 100%, as tqdm's `close`). Later calls do nothing;
    /// dropping an unfinished bar finishes it.
    pub fn finish(&self) {
        if self.finished.swap(true, Ordering::Relaxed) {
            return;
        }
        self.bar.abandon();
        if let Some(sink) = &self.notebook
            && self.final_frame.load(Ordering::Relaxed)
        {
            sink.print_last();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The bar style: tqdm's `{l_bar}{bar}{r_bar}` with the same number formats.
fn tqdm_style(initial: Arc<AtomicU64>) -> ProgressStyle {
    let rate = move |s: &ProgressState| {
        let done = s.pos().saturating_sub(initial.load(Ordering::Relaxed));
        let secs = shown_elapsed(s).as_secs_f64();
        (done > 0 && secs > 0.0).then(|| done as f64 / secs)
    };
    let eta_rate = rate.clone();
    ProgressStyle::with_template("{prefix}{tq_percent}%|{wide_bar}| {pos}/{len} [{tq_elapsed}<{tq_eta}, {tq_rate}{msg}]")
        .expect("the progress template is valid")
        // tqdm's smooth bar: full block, then ever thinner eighths, then blank.
        .progress_chars("█▉▊▋▌▍▎▏ ")
        .with_key("tq_percent", |s: &ProgressState, w: &mut dyn fmt::Write| {
            let pct = match s.len() {
                Some(0) | None => 100.0,
                Some(len) => s.pos() as f64 / len as f64 * 100.0,
            };
            let _ = write!(w, "{pct:3.0}");
        })
        .with_key("tq_elapsed", |s: &ProgressState, w: &mut dyn fmt::Write| {
            let _ = w.write_str(&format_interval(shown_elapsed(s)));
        })
        .with_key("tq_eta", move |s: &ProgressState, w: &mut dyn fmt::Write| {
            let _ = match eta_rate(s) {
                Some(r) => {
                    let left = s.len().unwrap_or(0).saturating_sub(s.pos());
                    w.write_str(&format_interval(Duration::from_secs_f64(left as f64 / r)))
                }
                None => w.write_str("?"),
            };
        })
        .with_key("tq_rate", move |s: &ProgressState, w: &mut dyn fmt::Write| {
            let _ = w.write_str(&format_rate(rate(s)));
        })
}

/// Time since the bar started, frozen once it is finished.
fn shown_elapsed(s: &ProgressState) -> Duration {
    // For a finished bar `duration()` is the time at which it finished.
    if s.is_finished() { s.duration() } else { s.elapsed() }
}

/// A duration as tqdm prints it: `mm:ss`, or `h:mm:ss` from one hour on;
/// fractions of a second are dropped.
///
/// ```
/// use encoder_bench::train::progress::format_interval;
/// use std::time::Duration;
/// assert_eq!(format_interval(Duration::from_secs_f64(412.9)), "06:52");
/// assert_eq!(format_interval(Duration::from_secs(3 * 3600 + 5)), "3:00:05");
/// ```
pub fn format_interval(d: Duration) -> String {
    let t = d.as_secs();
    let (h, m, s) = (t / 3600, t / 60 % 60, t % 60);
    if h > 0 { format!("{h}:{m:02}:{s:02}") } else { format!("{m:02}:{s:02}") }
}

/// A rate in steps per second as tqdm prints it: `" 6.97it/s"` (five wide, two
/// decimals), `" 2.50s/it"` when a step takes more than a second, `"?it/s"`
/// when unknown.
///
/// ```
/// use encoder_bench::train::progress::format_rate;
/// assert_eq!(format_rate(Some(6.974)), " 6.97it/s");
/// assert_eq!(format_rate(Some(123.456)), "123.46it/s");
/// assert_eq!(format_rate(Some(0.4)), " 2.50s/it");
/// assert_eq!(format_rate(None), "?it/s");
/// ```
pub fn format_rate(steps_per_sec: Option<f64>) -> String {
    match steps_per_sec.filter(|r| r.is_finite() && *r > 0.0) {
        Some(r) if r < 1.0 => format!("{:5.2}s/it", 1.0 / r),
        Some(r) => format!("{r:5.2}it/s"),
        None => "?it/s".to_string(),
    }
}

/// indicatif's view of a notebook cell: a fixed-width, one-line "terminal"
/// that turns each drawn frame into a printed line, throttled.
///
/// indicatif draws a frame as clear-line, text, padding, flush; the text
/// between a clear and a flush is the frame. Clones share their state, so
/// [`Progress`] keeps one to print the last frame at the end.
#[derive(Clone)]
struct NotebookSink {
    state: Arc<Mutex<SinkState>>,
}

struct SinkState {
    out: Box<dyn Write + Send>,
    /// The frame being drawn.
    pending: String,
    /// The last complete frame, printed or not.
    latest: String,
    /// The last frame printed, so that an unchanged frame is not printed twice.
    printed: String,
    /// When the last frame was printed, or the sink was made.
    printed_at: Instant,
    interval: Duration,
}

impl NotebookSink {
    fn new(out: Box<dyn Write + Send>, interval: Duration) -> NotebookSink {
        let state =
            SinkState { out, pending: String::new(), latest: String::new(), printed: String::new(), printed_at: Instant::now(), interval };
        NotebookSink { state: Arc::new(Mutex::new(state)) }
    }

    fn lock(&self) -> MutexGuard<'_, SinkState> {
        // A panic mid-draw leaves at worst a half-built frame; keep drawing.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Prints the latest frame unless it was the last one printed.
    fn print_last(&self) {
        let _ = self.lock().print(Instant::now());
    }
}

impl SinkState {
    fn print(&mut self, now: Instant) -> io::Result<()> {
        if self.latest.is_empty() || self.latest == self.printed {
            return Ok(());
        }
        self.printed.clone_from(&self.latest);
        self.printed_at = now;
        writeln!(self.out, "{}", self.latest)?;
        self.out.flush()
    }
}

impl fmt::Debug for NotebookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotebookSink").field("interval", &self.lock().interval).finish_non_exhaustive()
    }
}

impl TermLike for NotebookSink {
    fn width(&self) -> u16 {
        NOTEBOOK_WIDTH
    }

    // One line only: there is never anywhere to move to.
    fn move_cursor_up(&self, _: usize) -> io::Result<()> {
        Ok(())
    }

    fn move_cursor_down(&self, _: usize) -> io::Result<()> {
        Ok(())
    }

    fn move_cursor_right(&self, _: usize) -> io::Result<()> {
        Ok(())
    }

    fn move_cursor_left(&self, _: usize) -> io::Result<()> {
        Ok(())
    }

    fn write_line(&self, s: &str) -> io::Result<()> {
        self.write_str(s)
    }

    fn write_str(&self, s: &str) -> io::Result<()> {
        let mut st = self.lock();
        // A carriage return starts the frame over, as on a terminal.
        match s.rsplit_once('\r') {
            Some((_, rest)) => st.pending = rest.to_string(),
            None => st.pending.push_str(s),
        }
        Ok(())
    }

    fn clear_line(&self) -> io::Result<()> {
        self.lock().pending.clear();
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        let mut st = self.lock();
        let frame = std::mem::take(&mut st.pending);
        // indicatif pads the frame to the full width; the padding only matters on a terminal.
        let frame = frame.trim_end();
        if frame.is_empty() {
            return Ok(());
        }
        st.latest = frame.to_string();
        let now = Instant::now();
        if now.duration_since(st.printed_at) >= st.interval {
            st.print(now)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` into a buffer the test can read while the bar holds the writer.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn draw(sink: &NotebookSink, frame: &str) {
        sink.clear_line().unwrap();
        sink.write_str(frame).unwrap();
        sink.write_str("     ").unwrap();
        sink.flush().unwrap();
    }

    #[test]
    fn intervals_like_tqdm() {
        assert_eq!(format_interval(Duration::ZERO), "00:00");
        assert_eq!(format_interval(Duration::from_millis(59_999)), "00:59");
        assert_eq!(format_interval(Duration::from_secs(60)), "01:00");
        assert_eq!(format_interval(Duration::from_secs(3599)), "59:59");
        assert_eq!(format_interval(Duration::from_secs(3600)), "1:00:00");
        assert_eq!(format_interval(Duration::from_secs(100 * 3600 + 61)), "100:01:01");
    }

    #[test]
    fn rates_like_tqdm() {
        assert_eq!(format_rate(Some(6.97)), " 6.97it/s");
        assert_eq!(format_rate(Some(1.0)), " 1.00it/s");
        assert_eq!(format_rate(Some(0.5)), " 2.00s/it");
        assert_eq!(format_rate(Some(0.01)), "100.00s/it");
        assert_eq!(format_rate(Some(12345.678)), "12345.68it/s");
        assert_eq!(format_rate(Some(0.0)), "?it/s");
        assert_eq!(format_rate(Some(f64::INFINITY)), "?it/s");
    }

    #[test]
    fn mode_names_round_trip() {
        for m in [ProgressMode::Auto, ProgressMode::Terminal, ProgressMode::Notebook, ProgressMode::Quiet] {
            assert_eq!(m.to_string().parse::<ProgressMode>().unwrap(), m);
            assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{m}\""));
        }
        assert!("tty".parse::<ProgressMode>().is_err());
    }

    #[test]
    fn sink_prints_nothing_before_the_interval_then_last() {
        let out = Shared::default();
        let sink = NotebookSink::new(Box::new(out.clone()), Duration::from_secs(3600));
        draw(&sink, "a 1/3");
        draw(&sink, "a 2/3");
        draw(&sink, "a 3/3");
        assert_eq!(out.text(), "");
        sink.print_last();
        sink.print_last();
        assert_eq!(out.text(), "a 3/3\n");
    }

    #[test]
    fn sink_heartbeat_after_the_interval() {
        let out = Shared::default();
        let sink = NotebookSink::new(Box::new(out.clone()), Duration::from_millis(30));
        draw(&sink, "b 1/3");
        std::thread::sleep(Duration::from_millis(40));
        draw(&sink, "b 2/3");
        draw(&sink, "b 3/3");
        assert_eq!(out.text(), "b 2/3\n");
    }

    /// A summarised bar (fit's epoch and validation bars) leaves no line when it
    /// ends before the interval: the caller's summary is the epoch's one line.
    #[test]
    fn summarised_short_bar_prints_nothing() {
        let out = Shared::default();
        let bar = Progress::with_notebook_sink(4, "epoch 1/1", NotebookSink::new(Box::new(out.clone()), NOTEBOOK_INTERVAL)).summarised();
        bar.inc(4);
        bar.finish();
        drop(bar);
        assert_eq!(out.text(), "");
    }

    #[test]
    fn sink_without_throttle_prints_each_changed_frame() {
        let out = Shared::default();
        let sink = NotebookSink::new(Box::new(out.clone()), Duration::ZERO);
        draw(&sink, "x");
        draw(&sink, "x");
        sink.write_str("junk\ry").unwrap();
        sink.flush().unwrap();
        sink.flush().unwrap(); // nothing drawn since: no frame
        assert_eq!(out.text(), "x\ny\n");
    }

    /// The whole path: indicatif renders tqdm frames into the notebook sink.
    #[test]
    fn notebook_bar_prints_lines_ending_in_final_state() {
        let out = Shared::default();
        let bar = Progress::with_notebook_sink(8, "train", NotebookSink::new(Box::new(out.clone()), Duration::ZERO));
        for _ in 0..5 {
            bar.inc(1);
        }
        bar.set_postfix("loss=1.58");
        bar.finish();
        bar.finish();
        drop(bar);
        let text = out.text();
        assert!(text.ends_with('\n') && !text.contains('\r'), "{text:?}");
        let lines: Vec<&str> = text.lines().collect();
        let last = *lines.last().unwrap();
        // Stopped early: the bar shows where it stopped, not 100%.
        assert!(last.starts_with("train:  62%|█████"), "{last}");
        assert!(last.contains("| 5/8 [00:00<00:00, "), "{last}");
        assert!(last.ends_with("it/s, loss=1.58]"), "{last}");
        for l in &lines {
            assert!(l.starts_with("train: ") && l.chars().count() <= NOTEBOOK_WIDTH as usize, "{l}");
        }
        // The bar fills the fixed width exactly, as tqdm fills its columns.
        assert_eq!(last.chars().count(), NOTEBOOK_WIDTH as usize, "{last}");
        assert_eq!(lines.iter().filter(|l| **l == last).count(), 1, "final frame printed twice: {text}");
    }

    #[test]
    fn resumed_bar_starts_at_initial() {
        let out = Shared::default();
        let bar = Progress::with_notebook_sink(10, "", NotebookSink::new(Box::new(out.clone()), Duration::ZERO));
        bar.set_initial(10);
        bar.finish();
        let text = out.text();
        let last = text.lines().last().unwrap();
        // No desc: no "desc: " either; no step done in this bar: no rate.
        assert!(last.starts_with("100%|██████████"), "{last}");
        assert!(last.ends_with("| 10/10 [00:00<?, ?it/s]"), "{last}");
    }

    #[test]
    fn quiet_bar_draws_nothing_and_counts() {
        let bar = Progress::new(2, "q", ProgressMode::Quiet);
        bar.inc(2);
        assert_eq!(bar.position(), 2);
    }
}
