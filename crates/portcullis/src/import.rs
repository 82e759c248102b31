//! `portcullis registry import FILE`: loading issuer registry records from CSV (with a header
//! row) or JSON Lines (`.jsonl`, `.ndjson`), all or nothing.
//!
//! This module owns the file side of an import: choosing the format, mapping columns to
//! [`RawRecord`]s, numbering lines, collecting every bad line's errors, refusing a number that
//! appears twice, and handing hashed records to the store in batches inside one transaction.
//! What makes a record valid is the core's ([`RegistryRecord::parse`]); the SQL is the
//! store's.
//!
//! The file is streamed. A blocking thread reads, validates and hashes rows and sends batches
//! through a short bounded channel while this task writes the previous batch, so parsing and
//! the database work on both cores at once; only the keyed number hashes (for the duplicate
//! check) grow with the file.
//!
//! No card number, card ID or merchant code reaches an error message or a log line: messages
//! come from the core's field errors (which never echo values), from fixed texts here, or from
//! header names and keys that `printable_name` judges safe to echo.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use portcullis_core::config::Policies;
use portcullis_core::ids::AccountType;
use portcullis_core::ports::{Store, StoreError};
use portcullis_core::registry::{
    HashedRecord, RawRecord, RecordKeys, RegistryRecord, COLUMNS, OPTIONAL_COLUMNS,
};
use portcullis_core::service::registry_load::{finish_load, LoadReport};
use portcullis_crypto::KeyRing;
use tokio::sync::mpsc;

/// Records per `upsert` call: the store writes this many in one statement.
const BATCH_ROWS: usize = 1_000;
/// Batches parsed ahead of the database; a few are enough to keep both sides busy while
/// bounding memory.
const QUEUED_BATCHES: usize = 4;
/// After this many errors the operator has enough to fix; reading on would only take time.
pub const MAX_ERRORS: usize = 100;

/// What a successful import did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportReport {
    /// Records inserted or updated.
    pub records: u64,
    pub elapsed: Duration,
    /// What the records did to online accounts (reissues moved, status changes).
    pub load: LoadReport,
}

/// Who imports, and the settings the import's notices need.
pub struct ImportContext<'a> {
    pub store: &'a dyn Store,
    /// The registry keyring: records are hashed under its current key, rows under an old
    /// one moved.
    pub keys: &'a KeyRing,
    /// The audit chain's current key (`audit.key`).
    pub audit: &'a portcullis_core::audit::ChainKey,
    pub policies: &'a Policies,
    /// `cli:<user>`, named in the audit log.
    pub actor: &'a str,
    /// The load's time (the clock's `now`).
    pub now: portcullis_core::clock::UnixTime,
}

/// One problem on one line of the file. `column` is a contract column name, or empty when
/// the problem is the line as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// The 1-based physical line of the file (the CSV header is line 1).
    pub line: u64,
    pub column: String,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.column.is_empty() {
            write!(f, "line {}: {}", self.line, self.message)
        } else {
            write!(
                f,
                "line {}, column {}: {}",
                self.line, self.column, self.message
            )
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file's structure is wrong (header, JSON syntax, cell count); nothing was imported.
    #[error("line {line}: {message}")]
    Format { line: u64, message: String },
    /// Lines with bad values, in file order, at most [`MAX_ERRORS`]; nothing was imported.
    #[error("{}", invalid_summary(.0))]
    Invalid(Vec<LineError>),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The parsing thread ended without an answer (the runtime is shutting down).
    #[error("the import was interrupted: {0}")]
    Interrupted(String),
}

fn invalid_summary(errors: &[LineError]) -> String {
    let mut out = format!(
        "{} error{} in the file; nothing was imported",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    for e in errors {
        out.push('\n');
        out.push_str(&e.to_string());
    }
    if errors.len() >= MAX_ERRORS {
        out.push_str(&format!("\n(the list stops at {MAX_ERRORS} errors)"));
    }
    out
}

/// Imports the registry file at `path` in one transaction: every record is inserted or, when
/// its number is already known, updated; then the records' effects on online accounts
/// (reissues, status changes: docs/design/cards.md) with their notices and audit events,
/// in the same transaction. With any bad line, nothing is imported. Records are hashed
/// under the registry keyring's current key; a record stored under an old key is moved to
/// the current one (docs/design/keys.md, "The registry key").
pub async fn import_file(
    ctx: &ImportContext<'_>,
    path: &Path,
) -> Result<ImportReport, ImportError> {
    let (store, keys) = (ctx.store, ctx.keys);
    // A duration for the operator's report, not a point in time the rules depend on.
    let started = Instant::now();
    let (sender, mut batches) = mpsc::channel::<Vec<HashedRecord>>(QUEUED_BATCHES);
    let parser = {
        let keys = keys.clone();
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || parse_file(&path, &keys, &sender))
    };

    let mut import = store.begin_import(ctx.now).await?;
    while let Some(batch) = batches.recv().await {
        if let Err(e) = import.upsert(&batch).await {
            // Closing the channel makes the parser stop at its next batch.
            drop(batches);
            let _ = parser.await;
            return Err(e.into());
        }
    }
    let records = parser
        .await
        .map_err(|e| ImportError::Interrupted(e.to_string()))??;
    let source = format!(
        "file {}",
        path.file_name()
            .and_then(|n| n.to_str())
            .and_then(printable_name)
            .unwrap_or("(name not shown)")
    );
    let (load, _) =
        finish_load(import, ctx.policies, ctx.audit, ctx.actor, &source, records).await?;

    let elapsed = started.elapsed();
    tracing::info!(
        records,
        elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        "registry imported"
    );
    Ok(ImportReport {
        records,
        elapsed,
        load,
    })
}

/// Reads and validates the file at `path` exactly as [`import_file`] does, but writes
/// nothing: the number of records when every line is good. Synchronous and free of the
/// database, so the fuzz targets (`fuzz/`) drive the real parser through it.
pub fn validate_file(path: &Path, keys: &KeyRing) -> Result<u64, ImportError> {
    let (sender, mut batches) = mpsc::channel::<Vec<HashedRecord>>(QUEUED_BATCHES);
    let drain = std::thread::spawn(move || while batches.blocking_recv().is_some() {});
    let result = parse_file(path, keys, &sender);
    drop(sender);
    let _ = drain.join();
    result
}

/// Reads, validates and hashes the whole file on the calling (blocking) thread, sending
/// batches while it is clean; the number of records when every line was good.
fn parse_file(
    path: &Path,
    keys: &KeyRing,
    sender: &mpsc::Sender<Vec<HashedRecord>>,
) -> Result<u64, ImportError> {
    let file = File::open(path).map_err(|source| ImportError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut rows: Box<dyn Rows> = if is_json_lines(path) {
        Box::new(JsonRows::new(BufReader::with_capacity(1 << 16, file), path))
    } else {
        match CsvRows::open(file, path)? {
            Some(rows) => Box::new(rows),
            None => return Ok(0),
        }
    };
    let mut checker = Checker::new(keys);
    let mut raw = RawRecord::default();
    loop {
        match rows.next_row(&mut raw)? {
            Next::End => break,
            Next::Row { line } => checker.check(line, &raw),
            Next::Rejected(errors) => checker.reject(errors),
        }
        if checker.errors.len() >= MAX_ERRORS {
            break;
        }
        if checker.parsed.len() >= BATCH_ROWS {
            checker.flush();
        }
        if checker.batch.len() >= BATCH_ROWS && !send(sender, &mut checker.batch) {
            return Err(ImportError::Interrupted("the database side stopped".into()));
        }
    }
    checker.flush();
    if !checker.errors.is_empty() {
        // A repeated number is found when its batch is hashed, after later lines' errors.
        checker.errors.sort_by_key(|e| e.line);
        checker.errors.truncate(MAX_ERRORS);
        return Err(ImportError::Invalid(checker.errors));
    }
    if !checker.batch.is_empty() && !send(sender, &mut checker.batch) {
        return Err(ImportError::Interrupted("the database side stopped".into()));
    }
    Ok(checker.records)
}

/// False when the receiving side has gone (it failed and will report why).
fn send(sender: &mpsc::Sender<Vec<HashedRecord>>, batch: &mut Vec<HashedRecord>) -> bool {
    let full = std::mem::replace(batch, Vec::with_capacity(BATCH_ROWS));
    sender.blocking_send(full).is_ok()
}

fn is_json_lines(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson"))
}

/// Validation row by row; the keyed hashes a batch at a time on every core
/// ([`portcullis_core::par::map`]); then the duplicate check, in file order.
struct Checker {
    /// The registry keys: the current one, and the old ones a row may still be under.
    keys: RecordKeys,
    /// Where each number was first seen. The keys are keyed hashes, never numbers.
    first_line: HashMap<[u8; 32], u64>,
    /// Valid rows waiting for their hashes, with their lines.
    parsed: Vec<(u64, RegistryRecord)>,
    batch: Vec<HashedRecord>,
    errors: Vec<LineError>,
    records: u64,
}

impl Checker {
    fn new(keys: &KeyRing) -> Self {
        Self {
            keys: RecordKeys::of(keys),
            first_line: HashMap::new(),
            parsed: Vec::with_capacity(BATCH_ROWS),
            batch: Vec::with_capacity(BATCH_ROWS),
            errors: Vec::new(),
            records: 0,
        }
    }

    fn check(&mut self, line: u64, raw: &RawRecord) {
        match RegistryRecord::parse(raw) {
            Ok(record) => self.parsed.push((line, record)),
            Err(fields) => self.reject(fields.into_iter().map(|f| LineError {
                line,
                column: f.field,
                message: f.message,
            })),
        }
    }

    /// Hashes the parsed rows on every core, then checks their numbers in file order.
    fn flush(&mut self) {
        let parsed = std::mem::take(&mut self.parsed);
        let keys = &self.keys;
        let hashed = portcullis_core::par::map(&parsed, |(_, record)| record.hashed_with(keys));
        for ((line, _), hashed) in parsed.iter().zip(hashed) {
            let line = *line;
            match self.first_line.entry(hashed.number_hash) {
                Entry::Occupied(first) => {
                    let message = format!("the same number as line {}", first.get());
                    self.reject([LineError {
                        line,
                        column: "number".into(),
                        message,
                    }]);
                }
                Entry::Vacant(slot) => {
                    slot.insert(line);
                    // Once a line is bad nothing will be committed, so stop collecting.
                    if self.errors.is_empty() {
                        self.batch.push(hashed);
                        self.records += 1;
                    }
                }
            }
        }
    }

    fn reject(&mut self, errors: impl IntoIterator<Item = LineError>) {
        if self.errors.is_empty() {
            self.batch = Vec::new();
        }
        self.errors.extend(errors);
    }
}

enum Next {
    /// The row on `line` is in the caller's [`RawRecord`].
    Row {
        line: u64,
    },
    /// A line that could not become a [`RawRecord`] but leaves the file readable.
    Rejected(Vec<LineError>),
    End,
}

/// A source of data rows; structural faults that make the rest of the file unreadable are
/// errors, problems confined to one line are [`Next::Rejected`].
trait Rows {
    fn next_row(&mut self, raw: &mut RawRecord) -> Result<Next, ImportError>;
}

/// Every column a file may have: the contract's twelve, then the optional ones.
const ALL_COLUMNS: usize = 14;

/// Builds a record from cells in [`COLUMNS`] then [`OPTIONAL_COLUMNS`] order.
fn raw_record(cells: [String; ALL_COLUMNS]) -> RawRecord {
    let mut cells = cells.into_iter();
    // Struct fields are evaluated in the order written, which is the order of `COLUMNS`.
    let mut next = || cells.next().unwrap_or_default();
    RawRecord {
        account_type: next(),
        number: next(),
        verification: next(),
        expiry: next(),
        holder_name: next(),
        email: next(),
        phone: next(),
        product: next(),
        balance: next(),
        credit_limit: next(),
        payment_due_date: next(),
        minimum_due: next(),
        status: next(),
        replaces: next(),
    }
}

fn column_index(name: &str) -> Option<usize> {
    COLUMNS
        .iter()
        .chain(OPTIONAL_COLUMNS.iter())
        .position(|c| c.eq_ignore_ascii_case(name))
}

/// A column's name by its index in [`raw_record`]'s order.
fn column_name(index: usize) -> &'static str {
    COLUMNS
        .iter()
        .chain(OPTIONAL_COLUMNS.iter())
        .nth(index)
        .copied()
        .unwrap_or_default()
}

/// `name` when it is safe and useful to echo in a message. A header or key written by
/// mistake could be a card number, a card ID or a merchant code (a file without its header
/// row, say); those have several digits or are not word-like, so only short names with at
/// most two digits are shown.
fn printable_name(name: &str) -> Option<&str> {
    let word_like = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' ' | '.'));
    let digits = name.chars().filter(char::is_ascii_digit).count();
    (!name.is_empty() && name.len() <= 40 && word_like && digits <= 2).then_some(name)
}

/// How a message refers to a column or key the contract does not know.
fn describe_name(name: &str, position: Option<usize>) -> String {
    match (printable_name(name), position) {
        (Some(n), _) => format!("\"{n}\""),
        (None, Some(p)) if name.is_empty() => format!("with no name (number {p})"),
        (None, Some(p)) => format!("number {p} (name not shown)"),
        (None, None) => "(name not shown)".to_owned(),
    }
}

struct CsvRows {
    reader: csv::Reader<File>,
    lines: LineCounter<BufReader<File>>,
    /// For each column, its position in the file's rows (`None`: an optional column the
    /// file does not have).
    positions: [Option<usize>; ALL_COLUMNS],
    record: csv::StringRecord,
    path: PathBuf,
}

impl CsvRows {
    /// Reads and checks the header row; `None` for a file without one (an empty file).
    fn open(file: File, path: &Path) -> Result<Option<Self>, ImportError> {
        let io = |source| ImportError::Io {
            path: path.to_owned(),
            source,
        };
        let second = File::open(path).map_err(io)?;
        let mut rows = Self {
            reader: csv::ReaderBuilder::new()
                .has_headers(true)
                .trim(csv::Trim::All)
                .flexible(false)
                .buffer_capacity(1 << 16)
                .from_reader(file),
            lines: LineCounter::new(BufReader::with_capacity(1 << 16, second)),
            positions: [None; ALL_COLUMNS],
            record: csv::StringRecord::new(),
            path: path.to_owned(),
        };
        let headers = match rows.reader.headers() {
            Ok(headers) => headers.clone(),
            Err(e) => return Err(rows.error(e)),
        };
        if headers.iter().all(str::is_empty) {
            return Ok(None);
        }
        let line = rows.line_of(headers.position())?;
        rows.positions =
            header_positions(&headers).map_err(|message| ImportError::Format { line, message })?;
        Ok(Some(rows))
    }

    fn line_of(&mut self, position: Option<&csv::Position>) -> Result<u64, ImportError> {
        let offset = position.map_or(0, csv::Position::byte);
        self.lines
            .line_at(offset)
            .map_err(|source| ImportError::Io {
                path: self.path.clone(),
                source,
            })
    }

    fn error(&mut self, e: csv::Error) -> ImportError {
        let line = match self.line_of(e.position()) {
            Ok(line) => line,
            Err(io) => return io,
        };
        match e.into_kind() {
            csv::ErrorKind::Io(source) => ImportError::Io {
                path: self.path.clone(),
                source,
            },
            csv::ErrorKind::Utf8 { .. } => ImportError::Format {
                line,
                message: "is not UTF-8 text".into(),
            },
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => ImportError::Format {
                line,
                message: format!("has {len} cells but the header row has {expected_len}"),
            },
            // The reader raises no other kind; say nothing that could echo the data.
            _ => ImportError::Format {
                line,
                message: "cannot be read as CSV".into(),
            },
        }
    }
}

/// Physical line numbers for CSV records, counted over a second read of the file. The csv
/// crate's own count is one short after CRLF line ends and after blank lines
/// (BurntSushi/rust-csv#395 and #208), and registry files often come from Windows
/// spreadsheets; the record's byte offset is right, so lines are counted up to it.
struct LineCounter<R> {
    reader: R,
    offset: u64,
    newlines: u64,
}

impl<R: BufRead> LineCounter<R> {
    fn new(reader: R) -> Self {
        Self {
            reader,
            offset: 0,
            newlines: 0,
        }
    }

    /// The line of the record the csv reader placed at `record_offset`; offsets must not
    /// decrease from call to call.
    fn line_at(&mut self, record_offset: u64) -> std::io::Result<u64> {
        while self.offset < record_offset {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                break;
            }
            let wanted = usize::try_from(record_offset - self.offset).unwrap_or(usize::MAX);
            let chunk = buffer.get(..wanted.min(buffer.len())).unwrap_or_default();
            self.newlines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
            let taken = chunk.len();
            self.reader.consume(taken);
            self.offset += taken as u64;
        }
        // The offset can point at the LF of a CRLF, or at blank lines the reader skipped.
        loop {
            match self.reader.fill_buf()?.first() {
                Some(b'\n') => self.newlines += 1,
                Some(b'\r') => {}
                _ => break,
            }
            self.reader.consume(1);
            self.offset += 1;
        }
        Ok(self.newlines + 1)
    }
}

/// Maps the header row to the contract's columns, or says everything wrong with it.
fn header_positions(headers: &csv::StringRecord) -> Result<[Option<usize>; ALL_COLUMNS], String> {
    let looks_like_data = headers.iter().any(|cell| {
        AccountType::parse(cell).is_some() || cell.chars().filter(char::is_ascii_digit).count() >= 3
    });
    if looks_like_data {
        return Err(format!(
            "the first line must be the header row naming the columns: {}",
            COLUMNS.join(",")
        ));
    }
    let mut positions: [Option<usize>; ALL_COLUMNS] = [None; ALL_COLUMNS];
    let mut problems = Vec::new();
    for (position, name) in headers.iter().enumerate() {
        match column_index(name) {
            Some(i) => match positions.get_mut(i) {
                Some(slot) if slot.is_none() => *slot = Some(position),
                _ => problems.push(format!("column {} appears twice", column_name(i))),
            },
            None => problems.push(format!(
                "unknown column {} (the columns are {})",
                describe_name(name, Some(position + 1)),
                COLUMNS.join(",")
            )),
        }
    }
    let missing: Vec<&str> = COLUMNS
        .iter()
        .zip(positions.iter())
        .filter(|(_, p)| p.is_none())
        .map(|(c, _)| *c)
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "missing column{} {}",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        ));
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    Ok(positions)
}

impl Rows for CsvRows {
    fn next_row(&mut self, raw: &mut RawRecord) -> Result<Next, ImportError> {
        match self.reader.read_record(&mut self.record) {
            Ok(false) => Ok(Next::End),
            Ok(true) => {
                let offset = self.record.position().cloned();
                let line = self.line_of(offset.as_ref())?;
                let record = &self.record;
                let cells = self
                    .positions
                    .map(|p| p.and_then(|p| record.get(p)).unwrap_or_default().to_owned());
                *raw = raw_record(cells);
                Ok(Next::Row { line })
            }
            Err(e) => Err(self.error(e)),
        }
    }
}

struct JsonRows<R> {
    reader: R,
    buffer: Vec<u8>,
    line: u64,
    path: PathBuf,
}

impl<R: BufRead> JsonRows<R> {
    fn new(reader: R, path: &Path) -> Self {
        Self {
            reader,
            buffer: Vec::with_capacity(512),
            line: 0,
            path: path.to_owned(),
        }
    }

    fn format(&self, message: impl Into<String>) -> ImportError {
        ImportError::Format {
            line: self.line,
            message: message.into(),
        }
    }
}

impl<R: BufRead> Rows for JsonRows<R> {
    fn next_row(&mut self, raw: &mut RawRecord) -> Result<Next, ImportError> {
        loop {
            self.buffer.clear();
            let read = self
                .reader
                .read_until(b'\n', &mut self.buffer)
                .map_err(|source| ImportError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if read == 0 {
                return Ok(Next::End);
            }
            self.line += 1;
            let mut text = self.buffer.as_slice();
            if self.line == 1 {
                text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
            }
            let text = text.trim_ascii();
            if text.is_empty() {
                continue;
            }
            // Parsed as a `Value` first: serde_json's messages for a typed target quote the
            // offending string, which could be a card number.
            let value: serde_json::Value = serde_json::from_slice(text).map_err(|e| {
                self.format(match e.classify() {
                    serde_json::error::Category::Eof => {
                        "is not valid JSON (it ends too early)".to_owned()
                    }
                    _ => format!("is not valid JSON (error at character {})", e.column()),
                })
            })?;
            let serde_json::Value::Object(object) = value else {
                return Err(self.format("must be a JSON object with the registry columns as keys"));
            };
            return Ok(json_row(self.line, object, raw));
        }
    }
}

fn json_row(
    line: u64,
    object: serde_json::Map<String, serde_json::Value>,
    raw: &mut RawRecord,
) -> Next {
    let mut cells: [String; ALL_COLUMNS] = Default::default();
    let mut errors = Vec::new();
    for (key, value) in object {
        let Some((column, cell)) = column_index(&key)
            .map(|i| (column_name(i), i))
            .and_then(|(c, i)| Some(c).zip(cells.get_mut(i)))
        else {
            errors.push(LineError {
                line,
                column: String::new(),
                message: format!(
                    "unknown key {} (the keys are {})",
                    describe_name(&key, None),
                    COLUMNS.join(", ")
                ),
            });
            continue;
        };
        match value {
            serde_json::Value::String(s) => *cell = s,
            serde_json::Value::Number(n) => *cell = n.to_string(),
            serde_json::Value::Null => {}
            _ => errors.push(LineError {
                line,
                column: column.to_owned(),
                message: "must be a string or a number".into(),
            }),
        }
    }
    if errors.is_empty() {
        *raw = raw_record(cells);
        Next::Row { line }
    } else {
        Next::Rejected(errors)
    }
}

#[cfg(test)]
mod tests;
