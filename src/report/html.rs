//! HTML tables for the notebook and for nbconvert reports: plain cells
//! ([`html_table`]), polars data frames ([`dataframe_html`]), the per-epoch
//! history of a run, evaluation scores and what loading weights did. A
//! notebook shows them through [`report::display`](crate::report::display).
//!
//! Styles are inline attributes rather than a `<style>` block: Jupyter strips
//! `<style>` from untrusted notebooks and scopes its own table CSS, while
//! inline styles look the same in JupyterLab, classic Jupyter and nbconvert
//! HTML. Colours are set explicitly (text too), so tables stay readable under
//! a dark theme.
//!
//! ```
//! use encoder_bench::report::html::html_table;
//! let html = html_table(&["model".into(), "accuracy".into()], &[vec!["minilm".into(), "0.81".into()]]);
//! assert!(html.contains("<table") && html.contains("minilm"));
//! ```
use crate::models::LoadReport;
use crate::train::{History, Metrics};
use polars::prelude::{AnyValue, Column, DataFrame};
use std::fmt::Write as _;

/// Rows a data frame shows at most; beyond it a notebook gets sluggish.
const MAX_FRAME_ROWS: usize = 200;
/// Keys a [`LoadReport`] table lists per category before summarising.
const MAX_KEYS: usize = 8;

// Cell styles are kept short: a 200-row frame repeats them 1600 times. Text
// colour, font and tabular digits are set once on the table and inherited.
const TABLE_STYLE: &str = "border-collapse:collapse;margin:6px 0;font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;\
font-size:13px;line-height:1.4;color:#222;background:#fff;border:1px solid #d8dde3;font-variant-numeric:tabular-nums";
const CAPTION_STYLE: &str = "caption-side:top;text-align:left;padding:2px 2px 4px;color:#555;font-size:12px";
const TH_STYLE: &str =
    "padding:5px 10px;background:#eef1f5;color:#222;border-bottom:2px solid #9aa5b1;font-weight:600;vertical-align:bottom";
const TD_STYLE: &str = "padding:4px 10px";
const ROW_BORDER: &str = "border-bottom:1px solid #e6e9ed";
const ZEBRA: [&str; 2] = ["#ffffff", "#f5f7fa"];

/// A bulleted list of plain-text items (escaped), e.g. computed conclusions.
///
/// ```
/// let h = encoder_bench::report::html::bullet_list(&["a < b".to_string()]);
/// assert_eq!(h.0, "<ul><li>a &lt; b</li></ul>");
/// ```
pub fn bullet_list(items: &[String]) -> HtmlTable {
    HtmlTable(format!("<ul>{}</ul>", items.iter().map(|c| format!("<li>{}</li>", escape(c))).collect::<String>()))
}

/// The class-count table: id, class name, number of texts.
///
/// ```
/// let t = encoder_bench::report::html::class_table(&["CS".into(), "ECE".into()], &[30, 28]);
/// assert!(t.0.contains("ECE") && t.0.contains("28"));
/// ```
pub fn class_table(names: &[String], counts: &[usize]) -> HtmlTable {
    let rows: Vec<Vec<String>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| vec![i.to_string(), n.clone(), counts.get(i).map_or("-".into(), |c| c.to_string())])
        .collect();
    HtmlTable(html_table(&["id".into(), "class".into(), "texts".into()], &rows))
}

/// The files under `dir` (recursively, sorted) with their sizes: what a
/// notebook exported for its report.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::create_dir(dir.path().join("sweep")).unwrap();
/// std::fs::write(dir.path().join("sweep/runs.csv"), "a,b\n").unwrap();
/// let t = encoder_bench::report::html::files_table(dir.path())?;
/// assert!(t.0.contains("sweep/runs.csv"));
/// # Ok::<(), encoder_bench::Error>(())
/// ```
pub fn files_table(dir: &std::path::Path) -> crate::Result<HtmlTable> {
    fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<(String, u64)>) -> crate::Result<()> {
        for e in std::fs::read_dir(dir).map_err(|e| crate::Error::io(dir, e))? {
            let e = e.map_err(|e| crate::Error::io(dir, e))?;
            let p = e.path();
            if p.is_dir() {
                walk(&p, base, out)?;
            } else {
                let size = e.metadata().map_err(|e| crate::Error::io(&p, e))?.len();
                out.push((p.strip_prefix(base).unwrap_or(&p).to_string_lossy().replace('\\', "/"), size));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    files.sort();
    let rows: Vec<Vec<String>> =
        files.into_iter().map(|(p, s)| vec![format!("{}/{p}", dir.display()), format!("{:.1} kB", s as f64 / 1e3)]).collect();
    Ok(HtmlTable(html_table(&["file".into(), "size".into()], &rows)))
}

/// `text` with the five HTML-special characters escaped.
///
/// ```
/// use encoder_bench::report::html::escape;
/// assert_eq!(escape(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
/// ```
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Whether a cell reads as a number (`12`, `-0.5`, `1e-3`, `85.2 %`, `1,024`).
fn looks_numeric(cell: &str) -> bool {
    let s = cell.trim().trim_end_matches('%').trim_end().replace(',', "");
    !s.is_empty() && s.parse::<f64>().is_ok()
}

/// A table from cells that are already HTML. `right[c]` right-aligns column
/// `c`; rows listed in `bold` are emphasised (e.g. the best epoch).
fn table(caption: Option<&str>, headers: &[String], rows: &[Vec<String>], right: &[bool], bold: &[usize]) -> String {
    let width = rows.iter().map(Vec::len).chain([headers.len()]).max().unwrap_or(0);
    let align = |c: usize| {
        if right.get(c).copied().unwrap_or(false) { "right" } else { "left" }
    };
    let mut out = format!("<table style=\"{TABLE_STYLE}\">");
    if let Some(caption) = caption {
        let _ = write!(out, "<caption style=\"{CAPTION_STYLE}\">{caption}</caption>");
    }
    out.push_str("<thead><tr>");
    for c in 0..width {
        let h = headers.get(c).map(String::as_str).unwrap_or("");
        let _ = write!(out, "<th style=\"{TH_STYLE};text-align:{}\">{h}</th>", align(c));
    }
    out.push_str("</tr></thead><tbody>");
    for (r, row) in rows.iter().enumerate() {
        let weight = if bold.contains(&r) { ";font-weight:600" } else { "" };
        let _ = write!(out, "<tr style=\"background:{};{ROW_BORDER}{weight}\">", ZEBRA[r % 2]);
        for c in 0..width {
            let cell = row.get(c).map(String::as_str).unwrap_or("");
            let _ = write!(out, "<td style=\"{TD_STYLE};text-align:{}\">{cell}</td>", align(c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// An HTML table of plain-text cells (escaped here). Columns whose non-empty
/// cells are all numbers are right-aligned; rows alternate in shade.
///
/// ```
/// use encoder_bench::report::html::html_table;
/// let html = html_table(&["class".into(), "F1".into()], &[vec!["a<b".into(), "0.93".into()]]);
/// assert!(html.contains("a&lt;b"));
/// assert!(html.contains("text-align:right") && html.contains(">0.93<"));
/// ```
pub fn html_table(headers: &[String], rows: &[Vec<String>]) -> String {
    let width = rows.iter().map(Vec::len).chain([headers.len()]).max().unwrap_or(0);
    let right: Vec<bool> = (0..width)
        .map(|c| {
            let mut cells = rows.iter().filter_map(|r| r.get(c)).filter(|s| !s.trim().is_empty()).peekable();
            cells.peek().is_some() && cells.all(|s| looks_numeric(s))
        })
        .collect();
    let headers: Vec<String> = headers.iter().map(|h| escape(h)).collect();
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(|c| escape(c)).collect()).collect();
    table(None, &headers, &rows, &right, &[])
}

/// A float with four decimals, or four significant digits in scientific
/// notation where fixed decimals would show nothing useful.
///
/// ```
/// use encoder_bench::report::html::format_float;
/// assert_eq!(format_float(0.812345), "0.8123");
/// assert_eq!(format_float(1234.5), "1234.5000");
/// assert_eq!(format_float(2.5e-7), "2.500e-7");
/// assert_eq!(format_float(0.0), "0.0000");
/// ```
pub fn format_float(v: f64) -> String {
    let a = v.abs();
    if v.is_finite() && a != 0.0 && !(1e-4..1e9).contains(&a) { format!("{v:.3e}") } else { format!("{v:.4}") }
}

fn format_value(value: &AnyValue, is_float: bool) -> String {
    if let AnyValue::Null = value {
        return "<span style=\"color:#999\">null</span>".into();
    }
    if let Some(s) = value.get_str() {
        return escape(s);
    }
    if is_float && let Some(v) = value.extract::<f64>() {
        return format_float(v);
    }
    escape(&value.to_string())
}

/// A polars data frame as an HTML table: column names with their types, at
/// most 200 rows (the caption says how many there are), floats with four
/// decimals, numbers right-aligned.
///
/// ```
/// use encoder_bench::report::html::dataframe_html;
/// use polars::prelude::*;
/// let df = df!("model" => ["minilm", "bert"], "accuracy" => [0.81234567, 0.8])?;
/// let html = dataframe_html(&df);
/// assert!(html.contains("0.8123") && html.contains("shape: (2, 2)"));
/// # Ok::<(), PolarsError>(())
/// ```
pub fn dataframe_html(df: &DataFrame) -> String {
    let (height, width) = (df.height(), df.width());
    let shown = height.min(MAX_FRAME_ROWS);
    let columns: &[Column] = df.columns();
    let headers: Vec<String> = columns
        .iter()
        .map(|c| {
            format!(
                "{}<br><span style=\"font-weight:normal;color:#777;font-size:11px\">{}</span>",
                escape(c.name()),
                escape(&c.dtype().to_string())
            )
        })
        .collect();
    let right: Vec<bool> = columns.iter().map(|c| c.dtype().is_numeric()).collect();
    let rows: Vec<Vec<String>> = (0..shown)
        .map(|r| {
            columns
                .iter()
                .map(|c| match c.get(r) {
                    Ok(v) => format_value(&v, c.dtype().is_float()),
                    Err(e) => escape(&e.to_string()),
                })
                .collect()
        })
        .collect();
    let mut caption = format!("shape: ({height}, {width})");
    if shown < height {
        let _ = write!(caption, " — first {shown} rows shown");
    }
    table(Some(&caption), &headers, &rows, &right, &[])
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "—".into())
}

/// The per-epoch table of a run: epoch, losses, accuracy in %, macro-F1,
/// steps and training throughput; the best epoch is bold, a cut-short epoch marked.
///
/// ```
/// use encoder_bench::report::html::history_html;
/// use encoder_bench::train::History;
/// assert!(history_html(&History::default()).contains("no epochs"));
/// ```
pub fn history_html(history: &History) -> String {
    if history.epochs.is_empty() {
        return "<p style=\"color:#555\">no epochs recorded yet</p>".into();
    }
    let headers: Vec<String> =
        ["epoch", "train loss", "valid loss", "accuracy %", "macro-F1", "steps", "samples/s"].iter().map(|s| s.to_string()).collect();
    let rows: Vec<Vec<String>> = history
        .epochs
        .iter()
        .map(|e| {
            vec![
                if e.complete { e.epoch.to_string() } else { format!("{} (cut short)", e.epoch) },
                format!("{:.4}", e.train_loss),
                opt(e.val_loss, |v| format!("{v:.4}")),
                opt(e.accuracy, |v| format!("{:.2}", v * 100.0)),
                opt(e.macro_f1, |v| format!("{v:.4}")),
                e.steps.to_string(),
                format!("{:.1}", e.train_samples_per_s),
            ]
        })
        .collect();
    let best: Vec<usize> = history.best().and_then(|b| history.epochs.iter().position(|e| std::ptr::eq(e, b))).into_iter().collect();
    table(None, &headers, &rows, &[true; 7], &best)
}

/// Summary scores and a per-class precision/recall/F1/support table, with
/// the macro and weighted averages as in scikit-learn's report. `names[k]`
/// names class `k`; classes past the end of `names` show their id.
///
/// ```
/// use encoder_bench::report::html::metrics_html;
/// use encoder_bench::train::Metrics;
/// let m = Metrics::compute(&[0, 1, 1], &[0, 1, 0], 2)?;
/// let html = metrics_html(&m, &["neg".into(), "pos".into()]);
/// assert!(html.contains("pos") && html.contains("66.67"));
/// # Ok::<(), encoder_bench::Error>(())
/// ```
pub fn metrics_html(metrics: &Metrics, names: &[String]) -> String {
    let total: usize = metrics.per_class.iter().map(|c| c.support).sum();
    let summary = table(
        None,
        &["accuracy %", "macro-F1", "weighted F1", "macro precision", "macro recall", "examples"].map(String::from),
        &[vec![
            format!("{:.2}", metrics.accuracy * 100.0),
            format!("{:.4}", metrics.macro_f1),
            format!("{:.4}", metrics.weighted_f1),
            format!("{:.4}", metrics.macro_precision),
            format!("{:.4}", metrics.macro_recall),
            total.to_string(),
        ]],
        &[true; 6],
        &[],
    );
    let f4 = |v: f64| format!("{v:.4}");
    let mut rows: Vec<Vec<String>> = metrics
        .per_class
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let name = names.get(k).map(|n| escape(n)).unwrap_or_else(|| k.to_string());
            vec![name, f4(c.precision), f4(c.recall), f4(c.f1), c.support.to_string()]
        })
        .collect();
    let n = rows.len();
    rows.push(vec!["macro avg".into(), f4(metrics.macro_precision), f4(metrics.macro_recall), f4(metrics.macro_f1), total.to_string()]);
    rows.push(vec![
        "weighted avg".into(),
        f4(metrics.weighted_precision()),
        f4(metrics.weighted_recall()),
        f4(metrics.weighted_f1),
        total.to_string(),
    ]);
    let per_class = table(
        None,
        &["class", "precision", "recall", "F1", "support"].map(String::from),
        &rows,
        &[false, true, true, true, true],
        &[n, n + 1],
    );
    format!("<div>{summary}{per_class}</div>")
}

fn key_list(keys: &[String]) -> String {
    if keys.is_empty() {
        return "<span style=\"color:#999\">none</span>".into();
    }
    let shown: Vec<String> = keys.iter().take(MAX_KEYS).map(|k| format!("<code>{}</code>", escape(k))).collect();
    let more = if keys.len() > MAX_KEYS { format!(" … ({} in all)", keys.len()) } else { String::new() };
    format!("{}{more}", shown.join(", "))
}

/// What loading weights did, one row per category with its count and keys;
/// missing and unexpected keys are flagged in red when there are any.
///
/// ```
/// use encoder_bench::models::LoadReport;
/// use encoder_bench::report::html::load_report_html;
/// let r = LoadReport { missing: vec!["classifier.weight".into()], ..Default::default() };
/// assert!(load_report_html(&r).contains("classifier.weight"));
/// ```
pub fn load_report_html(report: &LoadReport) -> String {
    let warn = |n: usize| {
        if n > 0 { format!("<span style=\"color:#b00020;font-weight:600\">{n}</span>") } else { n.to_string() }
    };
    let converted: Vec<String> = report.converted.iter().map(|(k, dtype)| format!("{k} ({dtype})")).collect();
    let rows = vec![
        vec!["loaded".into(), report.loaded.len().to_string(), key_list(&report.loaded)],
        vec!["missing (newly initialised)".into(), warn(report.missing.len()), key_list(&report.missing)],
        vec!["unexpected".into(), warn(report.unexpected.len()), key_list(&report.unexpected)],
        vec!["ignored".into(), report.ignored.len().to_string(), key_list(&report.ignored)],
        vec!["converted to f32".into(), report.converted.len().to_string(), key_list(&converted)],
        vec![
            "renamed".into(),
            report.renamed.to_string(),
            "names rewritten (e.g. <code>LayerNorm.gamma</code> → <code>.weight</code>, prefixes)".into(),
        ],
    ];
    let caption = format!("weights from <code>{}</code>", escape(&report.source));
    table(Some(&caption), &["keys", "count", "names"].map(String::from), &rows, &[false, true, false], &[])
}

/// An HTML fragment that shows itself as rich output when a notebook cell ends
/// with it (evcxr, through the hook in [`report::display`](crate::report::display))
/// and prints as its source otherwise.
///
/// ```
/// use encoder_bench::report::html::{HtmlTable, html_table};
/// let t = HtmlTable(html_table(&["a".into()], &[]));
/// assert!(t.to_string().starts_with("<table"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HtmlTable(pub String);

impl HtmlTable {
    /// The table as plain text for a terminal: one line per row, cells
    /// separated by ` | `, tags dropped and entities decoded.
    ///
    /// ```
    /// use encoder_bench::report::html::{HtmlTable, html_table};
    /// let t = HtmlTable(html_table(&["model".into(), "acc".into()], &[vec!["a & b".into(), "85.2".into()]]));
    /// assert_eq!(t.to_text(), "model | acc\na & b | 85.2");
    /// ```
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mut row: Vec<String> = Vec::new();
        let mut cell = String::new();
        let mut rest = self.0.as_str();
        while let Some(open) = rest.find('<') {
            cell.push_str(&rest[..open]);
            let close = rest[open..].find('>').map_or(rest.len(), |c| open + c + 1);
            let tag = &rest[open..close];
            let name: String = tag.trim_start_matches('<').chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '/').collect();
            if name == "td" || name == "th" {
                cell.clear(); // what lay between cells (layout whitespace)
            } else if name == "/td" || name == "/th" {
                row.push(decode(cell.trim()));
                cell.clear();
            } else if name == "/tr" {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&row.join(" | "));
                row.clear();
            }
            rest = &rest[close..];
        }
        out
    }
}

fn decode(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&")
}

impl std::fmt::Display for HtmlTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_support::history;

    #[test]
    fn table_escapes_and_aligns() {
        let html = html_table(
            &["name <i>".into(), "acc".into(), "note".into()],
            &[vec!["a & b".into(), "85.2 %".into(), "\"q\"".into()], vec!["c".into(), "1,024".into()]],
        );
        assert!(html.contains("name &lt;i&gt;") && html.contains("a &amp; b") && html.contains("&quot;q&quot;"));
        assert!(!html.contains("<i>"));
        // Column 2 is numeric, columns 1 and 3 are not; the short row is padded.
        assert_eq!(html.matches("text-align:right").count(), 3);
        assert_eq!(html.matches("<td").count(), 6);
        assert!(html.contains(ZEBRA[1]));
    }

    #[test]
    fn dataframe_html_formats_by_type() {
        let df = polars::df!(
            "model" => ["minilm", "bert"],
            "batch_size" => [16u64, 32],
            "train_samples_per_s" => [123.456, 7.0],
            "macro_f1" => [None::<f64>, Some(0.5)],
        )
        .unwrap();
        let html = dataframe_html(&df);
        assert!(html.contains("shape: (2, 4)") && html.contains("123.4560") && html.contains(">null<"));
        assert!(html.contains("str") && html.contains("f64") && html.contains("u64"));
        // The three numeric columns are right-aligned, the names are not.
        assert_eq!(html.matches("<td style=\"padding:4px 10px;text-align:right").count(), 6);
    }

    #[test]
    fn dataframe_html_caps_rows() {
        let df = polars::df!("x" => (0..250).map(|i| i as f64 * 0.5).collect::<Vec<_>>()).unwrap();
        let html = dataframe_html(&df);
        assert_eq!(html.matches("<tr style").count(), MAX_FRAME_ROWS);
        assert!(html.contains("first 200 rows shown"));
    }

    #[test]
    fn display_tables() {
        let h = history(3);
        let html = history_html(&h);
        assert!(html.contains("3 (cut short)") && html.contains("80.00") && html.contains("—"));
        // The best epoch (3, 80 %) is bold.
        assert_eq!(html.matches("font-weight:600\"><td").count(), 1);

        let m = Metrics::compute(&[0, 1, 2, 2], &[0, 2, 2, 2], 3).unwrap();
        let html = metrics_html(&m, &["x<y".into()]);
        assert!(html.contains("x&lt;y") && html.contains(">2<") && html.contains("weighted avg") && html.contains("75.00"));

        let r = LoadReport {
            source: "w.bin".into(),
            loaded: (0..20).map(|i| format!("k{i}")).collect(),
            unexpected: vec!["cls.predictions.bias".into()],
            converted: vec![("a".into(), "f16".into())],
            ..Default::default()
        };
        let html = load_report_html(&r);
        assert!(html.contains("(20 in all)") && html.contains("a (f16)") && html.contains("#b00020") && html.contains("w.bin"));
    }

    /// Writes every table to /tmp/report_tables.html for a look in a browser:
    /// `cargo test --lib report::html::tests::render_sample -- --ignored`.
    #[test]
    #[ignore]
    fn render_sample() {
        let (a, b) = (history(3), history(2));
        let m = Metrics::compute(&[0, 1, 2, 2, 1], &[0, 2, 2, 2, 1], 3).unwrap();
        let r = LoadReport { source: "models/minilm/model.safetensors".into(), loaded: vec!["k".into(); 101], ..Default::default() };
        let df = crate::report::frames::history_frame(&[("minilm".into(), 16, &a), ("bert".into(), 32, &b)]);
        let page =
            [history_html(&a), metrics_html(&m, &["neg".into(), "pos".into()]), load_report_html(&r), dataframe_html(&df)].join("<hr>");
        std::fs::write("/tmp/report_tables.html", format!("<!doctype html><meta charset=utf-8><body>{page}</body>")).unwrap();
    }

    #[test]
    fn float_format() {
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(-0.5), "-0.5000");
        assert_eq!(format_float(3e12), "3.000e12");
    }
}
