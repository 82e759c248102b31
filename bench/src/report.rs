//! The one table: each figure with its target and an informational PASS/MISS, the CPU each
//! phase used (so a disturbed run shows), and notes below.

use crate::sys::CpuUse;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Miss,
    /// A figure without a target of its own (an input to a ratio, a detail).
    Info,
}

impl Verdict {
    pub fn of(pass: bool) -> Self {
        if pass {
            Self::Pass
        } else {
            Self::Miss
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Miss => "MISS",
            Self::Info => "",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Row {
    pub fig: String,
    pub what: String,
    pub value: String,
    pub target: String,
    pub verdict: Verdict,
    /// The CPU of the phase this row was measured in (shown on the phase's first row).
    pub cpu: Option<CpuUse>,
}

#[derive(Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn info(&mut self, fig: &str, what: impl Into<String>, value: impl Into<String>) {
        self.push(fig, what, value, "", Verdict::Info);
    }

    pub fn check(
        &mut self,
        fig: &str,
        what: impl Into<String>,
        value: impl Into<String>,
        target: impl Into<String>,
        pass: bool,
    ) {
        self.push(fig, what, value, target, Verdict::of(pass));
    }

    fn push(
        &mut self,
        fig: &str,
        what: impl Into<String>,
        value: impl Into<String>,
        target: impl Into<String>,
        verdict: Verdict,
    ) {
        self.rows.push(Row {
            fig: fig.to_owned(),
            what: what.into(),
            value: value.into(),
            target: target.into(),
            verdict,
            cpu: None,
        });
    }

    /// Attaches a phase's CPU use to the last row.
    pub fn cpu(&mut self, cpu: CpuUse) {
        if let Some(row) = self.rows.last_mut() {
            row.cpu = Some(cpu);
        }
    }

    pub fn note(&mut self, fig: &str, text: impl Into<String>) {
        self.notes.push(format!("[{fig}] {}", text.into()));
    }

    /// Prints the table and the notes.
    pub fn print(&self) {
        let headers = [
            "fig",
            "figure",
            "value",
            "target",
            "result",
            "CPU cores: server/bench/db/other",
        ];
        let cells: Vec<[String; 6]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.fig.clone(),
                    r.what.clone(),
                    r.value.clone(),
                    r.target.clone(),
                    r.verdict.label().to_owned(),
                    r.cpu.map(cpu_cell).unwrap_or_default(),
                ]
            })
            .collect();
        let mut widths = headers.map(|h| h.chars().count());
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cols: &[&str]| {
            let mut out = String::new();
            for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
                if i > 0 {
                    out.push_str(" | ");
                }
                out.push_str(c);
                out.push_str(&" ".repeat(w.saturating_sub(c.chars().count())));
            }
            println!("{}", out.trim_end());
        };
        line(&headers);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&rule.iter().map(String::as_str).collect::<Vec<_>>());
        for row in &cells {
            line(&row.iter().map(String::as_str).collect::<Vec<_>>());
        }
        let missed = self
            .rows
            .iter()
            .filter(|r| r.verdict == Verdict::Miss)
            .count();
        let passed = self
            .rows
            .iter()
            .filter(|r| r.verdict == Verdict::Pass)
            .count();
        println!(
            "\n{passed} targets met, {missed} missed (informational: nothing here fails the run)."
        );
        if !self.notes.is_empty() {
            println!("\nNotes:");
            for n in &self.notes {
                println!("  {n}");
            }
        }
    }
}

fn cpu_cell(c: CpuUse) -> String {
    format!(
        "{:.2}/{:.2}/{:.2}/{:.2}",
        c.server, c.bench, c.postgres, c.others
    )
}

/// `1234567.8` → `1,234,568`.
pub fn thousands(v: f64) -> String {
    let n = v.round().max(0.0) as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

pub fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1_000.0), "1,000");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
    }
}
