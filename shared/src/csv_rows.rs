//! Reads the invitation CSV a person exported from a spreadsheet: one `{email, role}` per row.
//!
//! Streaming: records are read one at a time from any [`Read`], so the same reader serves a
//! 1 MiB preview body and a million-row file from S3 in bounded memory (one row, plus the
//! `csv` crate's buffer). It accepts what spreadsheets produce: UTF-8 with or without a BOM,
//! CRLF, LF or a lone CR (old Mac exports), quoted fields (with commas or line breaks inside), the header in any column
//! order and any case, extra columns (ignored) and blank lines (skipped). Cells are trimmed;
//! nothing is ever evaluated, so `=HYPERLINK(...)` is just text (which the row checks then
//! refuse as an email address).
//!
//! A problem with the file as a whole is a [`CsvError`], after which the reader yields
//! nothing more; a problem with one row's values is for the row checks of the caller.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::{Arc, Mutex, PoisonError};

/// Longest cell accepted, in bytes. An address is at most 254 characters; a longer cell is
/// nearly always a quote that was never closed and swallowed the rest of the file.
pub const MAX_CELL_BYTES: usize = 10 * 1024;
/// Longest row accepted, in bytes, all columns together (bounds the memory of one row).
pub const MAX_ROW_BYTES: usize = 64 * 1024;
/// The `csv` crate's read buffer; the reader may hold this much beyond the current row.
const BUFFER_BYTES: usize = 8 * 1024;

/// One data row: its 1-based physical line in the file (the header is usually line 1), and
/// its trimmed cells. `email` is empty when the row has no cell in that column; `role` is
/// `None` when the cell is missing or empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRow {
    pub line: u64,
    pub email: String,
    pub role: Option<String>,
}

/// Why the file as a whole cannot be used. Each message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error(
        "The file is empty. The first line must name the columns, e.g. 'email,role', followed by one line per person."
    )]
    Empty,
    #[error(
        "The header (line {line}) has no 'email' column. The first line must name the columns, e.g. 'email,role'."
    )]
    NoEmailColumn { line: u64 },
    #[error(
        "Line {line} is not valid UTF-8 text. Save the file as 'CSV UTF-8' in your spreadsheet program and upload it again."
    )]
    NotUtf8 { line: u64 },
    #[error(
        "The row starting on line {line} is too long (a cell over {MAX_CELL_BYTES} bytes or a row over {MAX_ROW_BYTES} bytes). This is usually a quote (\") that is never closed; fix that line and upload the file again."
    )]
    RowTooLong { line: u64 },
    #[error(
        "The file has more than {max} rows of people; split it into files of at most {max} rows."
    )]
    TooManyRows { max: usize },
    #[error("The file could not be read near line {line}: {message}")]
    Unreadable { line: u64, message: String },
}

/// Reads [`CsvRow`]s from `R`. Create it with [`CsvRows::new`], which reads the header.
pub struct CsvRows<R> {
    reader: csv::Reader<Tap<R>>,
    window: Arc<Mutex<Window>>,
    record: csv::ByteRecord,
    email_col: usize,
    role_col: Option<usize>,
    max_rows: Option<usize>,
    rows: usize,
    done: bool,
    /// Offset of this reader's first byte in the whole file (non-zero when resumed).
    base_offset: u64,
}

/// The columns of a file, found in its header; kept with a checkpoint to resume reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Columns {
    pub email: usize,
    pub role: Option<usize>,
}

/// Where a reader stands between two rows: resuming at `offset` with `lines_before` line
/// breaks already counted reads the rest of the file with the same line numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub offset: u64,
    pub lines_before: u64,
    /// The byte before `offset` is a CR: an LF at `offset` ends the same line, not another.
    /// (Absent from checkpoints written before lone CRs counted as line breaks.)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_cr: bool,
}

impl<R: Read> CsvRows<R> {
    /// Reads the header and finds the `email` (required) and `role` (optional) columns.
    pub fn new(input: R) -> Result<Self, CsvError> {
        let mut rows = Self::reader(
            input,
            Position::default(),
            Columns {
                email: 0,
                role: None,
            },
        );
        let (line, header) = rows.next_record()?.ok_or(CsvError::Empty)?;
        let position = |name: &str| {
            header.iter().position(|cell| {
                cell.trim_start_matches('\u{feff}')
                    .trim()
                    .eq_ignore_ascii_case(name)
            })
        };
        rows.email_col = position("email").ok_or(CsvError::NoEmailColumn { line })?;
        rows.role_col = position("role");
        Ok(rows)
    }

    /// Reads on from a [`Position`] of an earlier reader of the same file, with the columns
    /// its header named; `input` starts at `at.offset` (e.g. an S3 range request).
    pub fn resume(input: R, at: Position, columns: Columns) -> Self {
        Self::reader(input, at, columns)
    }

    /// The columns found in the header.
    pub fn columns(&self) -> Columns {
        Columns {
            email: self.email_col,
            role: self.role_col,
        }
    }

    /// Where the reader stands: after the last row returned (and any blank lines read past).
    pub fn position(&self) -> Position {
        let window = lock(&self.window);
        Position {
            offset: self.base_offset + window.offset,
            lines_before: window.newlines,
            after_cr: window.after_cr,
        }
    }

    fn reader(input: R, at: Position, columns: Columns) -> Self {
        let window = Arc::new(Mutex::new(Window {
            newlines: at.lines_before,
            after_cr: at.after_cr,
            ..Window::default()
        }));
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .buffer_capacity(BUFFER_BYTES)
            .from_reader(Tap {
                inner: input,
                window: Arc::clone(&window),
            });
        Self {
            reader,
            window,
            record: csv::ByteRecord::new(),
            email_col: columns.email,
            role_col: columns.role,
            max_rows: None,
            rows: 0,
            done: false,
            base_offset: at.offset,
        }
    }

    /// Refuses files with more than `max` data rows (the row after the last allowed one
    /// yields [`CsvError::TooManyRows`]).
    pub fn max_rows(mut self, max: usize) -> Self {
        self.max_rows = Some(max);
        self
    }

    /// The next non-blank record, decoded, with the physical line it starts on.
    fn next_record(&mut self) -> Result<Option<(u64, Vec<String>)>, CsvError> {
        loop {
            let read = self.reader.read_byte_record(&mut self.record);
            let line = lock(&self.window).start_line();
            match read {
                Ok(false) => return Ok(None),
                Ok(true) => {}
                Err(err) => return Err(read_error(err, line)),
            }
            let end = self.reader.position().byte();
            lock(&self.window).advance_to(end);
            if self.record.iter().all(<[u8]>::is_empty) {
                continue; // a line of spaces or of empty cells (",,")
            }
            if self.record.iter().any(|cell| cell.len() > MAX_CELL_BYTES) {
                return Err(CsvError::RowTooLong { line });
            }
            let cells = self
                .record
                .iter()
                .map(|cell| std::str::from_utf8(cell).map(str::to_owned))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| CsvError::NotUtf8 { line })?;
            return Ok(Some((line, cells)));
        }
    }

    fn next_row(&mut self) -> Result<Option<CsvRow>, CsvError> {
        let Some((line, mut cells)) = self.next_record()? else {
            return Ok(None);
        };
        self.rows += 1;
        if let Some(max) = self.max_rows
            && self.rows > max
        {
            return Err(CsvError::TooManyRows { max });
        }
        let mut take = |col: usize| {
            cells
                .get_mut(col)
                .map(std::mem::take)
                .filter(|cell| !cell.is_empty())
        };
        let email = take(self.email_col).unwrap_or_default();
        let role = self.role_col.and_then(take);
        Ok(Some(CsvRow { line, email, role }))
    }
}

impl<R: Read> Iterator for CsvRows<R> {
    type Item = Result<CsvRow, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_row().transpose();
        if !matches!(next, Some(Ok(_))) {
            self.done = true;
        }
        next
    }
}

fn lock(window: &Mutex<Window>) -> std::sync::MutexGuard<'_, Window> {
    window.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read_error(err: csv::Error, line: u64) -> CsvError {
    if let csv::ErrorKind::Io(io) = err.kind()
        && io.get_ref().is_some_and(|inner| inner.is::<RowTooLong>())
    {
        return CsvError::RowTooLong { line };
    }
    CsvError::Unreadable {
        line,
        message: err.to_string(),
    }
}

/// The bytes read from the input since the start of the current record, so that each
/// record's physical line is known exactly. (The `csv` crate's own line count is taken
/// before skipped blank lines and, with CRLF, before the LF, so it is off by some lines.)
#[derive(Default)]
struct Window {
    /// Bytes from the start of the current record (minus blank lines before it) on.
    bytes: VecDeque<u8>,
    /// Absolute offset of `bytes[0]` in the input.
    offset: u64,
    /// Line breaks before `offset`: each LF, each CR, and a CRLF once.
    newlines: u64,
    /// The byte before `offset` is a CR.
    after_cr: bool,
}

impl Window {
    /// Drops blank lines (CR and LF) at the start: the `csv` crate skips them too.
    fn skip_blank_lines(&mut self) {
        while let Some(&byte) = self.bytes.front() {
            if byte != b'\n' && byte != b'\r' {
                break;
            }
            self.pass(byte);
            self.bytes.pop_front();
        }
    }

    /// Moves `offset` past `byte`, counting the line it ends. The `csv` crate ends a record
    /// at LF, CR or CRLF, so a file saved with lone CRs has one row per line like any other.
    fn pass(&mut self, byte: u8) {
        if byte == b'\r' || (byte == b'\n' && !self.after_cr) {
            self.newlines += 1;
        }
        self.after_cr = byte == b'\r';
        self.offset += 1;
    }

    /// The line the current record starts on.
    fn start_line(&mut self) -> u64 {
        self.skip_blank_lines();
        self.newlines + 1
    }

    /// Forgets the bytes before `end` (the end of the record just read).
    fn advance_to(&mut self, end: u64) {
        let n = usize::try_from(end.saturating_sub(self.offset))
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        for _ in 0..n {
            if let Some(byte) = self.bytes.pop_front() {
                self.pass(byte);
            }
        }
        self.skip_blank_lines();
    }
}

/// The marker of the I/O error a [`Tap`] raises when one row grows past [`MAX_ROW_BYTES`].
#[derive(Debug)]
struct RowTooLong;

impl std::fmt::Display for RowTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("row too long")
    }
}

impl std::error::Error for RowTooLong {}

/// Passes the input through to the `csv` reader, keeping the current record's bytes in the
/// [`Window`]; refuses to read on once one record exceeds [`MAX_ROW_BYTES`], so that an
/// unclosed quote cannot make the reader hold the rest of a large file.
struct Tap<R> {
    inner: R,
    window: Arc<Mutex<Window>>,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut window = lock(&self.window);
        window.bytes.extend(&buf[..n]);
        window.skip_blank_lines();
        if window.bytes.len() > MAX_ROW_BYTES + BUFFER_BYTES {
            return Err(io::Error::other(RowTooLong));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: u64, email: &str, role: Option<&str>) -> CsvRow {
        CsvRow {
            line,
            email: email.to_owned(),
            role: role.map(str::to_owned),
        }
    }

    fn read_all(input: &[u8]) -> Result<Vec<CsvRow>, CsvError> {
        CsvRows::new(input)?.collect()
    }

    /// Runs each (input, expected rows) case and names the failing input.
    fn check(cases: &[(&[u8], Vec<CsvRow>)]) {
        for (input, expected) in cases {
            assert_eq!(
                read_all(input).as_ref(),
                Ok(expected),
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    /// Runs each (input, expected error) case and names the failing input.
    fn check_errors(cases: &[(&[u8], CsvError)]) {
        for (input, expected) in cases {
            assert_eq!(
                read_all(input).as_ref(),
                Err(expected),
                "input {:?}",
                String::from_utf8_lossy(&input[..input.len().min(200)])
            );
        }
    }

    #[test]
    fn plain_lf_file_gives_one_row_per_line() {
        check(&[
            (
                b"email,role\nada@example.com,member\ngrace@example.com,admin\n",
                vec![
                    row(2, "ada@example.com", Some("member")),
                    row(3, "grace@example.com", Some("admin")),
                ],
            ),
            (
                b"email,role\nada@example.com,member",
                vec![row(2, "ada@example.com", Some("member"))],
            ),
        ]);
    }

    #[test]
    fn crlf_line_endings_give_the_same_rows_and_lines() {
        check(&[
            (
                b"email,role\r\nada@example.com,member\r\ngrace@example.com,admin\r\n",
                vec![
                    row(2, "ada@example.com", Some("member")),
                    row(3, "grace@example.com", Some("admin")),
                ],
            ),
            (
                b"email,role\r\nada@example.com,member",
                vec![row(2, "ada@example.com", Some("member"))],
            ),
        ]);
    }

    #[test]
    fn utf8_bom_is_ignored() {
        check(&[
            (
                b"\xef\xbb\xbfemail,role\nada@example.com,member\n",
                vec![row(2, "ada@example.com", Some("member"))],
            ),
            (
                b"\xef\xbb\xbf\"email\",role\r\nada@example.com,member\r\n",
                vec![row(2, "ada@example.com", Some("member"))],
            ),
        ]);
    }

    #[test]
    fn quoted_fields_keep_commas_quotes_and_line_breaks_as_text() {
        check(&[
            (
                b"email,role,name\n\"ada@example.com\",\"member\",\"Lovelace, Ada\"\n",
                vec![row(2, "ada@example.com", Some("member"))],
            ),
            (
                b"email,name,role\nada@example.com,\"Ada \"\"Countess\"\"\nof Lovelace\",admin\ngrace@example.com,Grace,member\n",
                vec![
                    row(2, "ada@example.com", Some("admin")),
                    row(4, "grace@example.com", Some("member")),
                ],
            ),
            (
                b"email\r\n\"a,b@example.com\"\r\n",
                vec![row(2, "a,b@example.com", None)],
            ),
        ]);
    }

    #[test]
    fn header_is_found_in_any_column_order_and_case() {
        check(&[
            (
                b"Role,EMAIL\nmember,ada@example.com\n",
                vec![row(2, "ada@example.com", Some("member"))],
            ),
            (
                b" ROLE , Email \nadmin,ada@example.com\n",
                vec![row(2, "ada@example.com", Some("admin"))],
            ),
        ]);
    }

    #[test]
    fn extra_columns_are_ignored() {
        check(&[(
            b"Name,Email,Team,Role,Notes\nAda,ada@example.com,R&D,admin,first\n",
            vec![row(2, "ada@example.com", Some("admin"))],
        )]);
    }

    #[test]
    fn blank_lines_are_skipped_and_lines_still_counted() {
        check(&[
            (
                b"email,role\n\nada@example.com,member\n\n\ngrace@example.com\n\n",
                vec![
                    row(3, "ada@example.com", Some("member")),
                    row(6, "grace@example.com", None),
                ],
            ),
            (
                b"\r\n\r\nemail,role\r\n\r\nada@example.com,member\r\n   \r\n,,\r\ngrace@example.com\r\n",
                vec![
                    row(5, "ada@example.com", Some("member")),
                    row(8, "grace@example.com", None),
                ],
            ),
        ]);
    }

    #[test]
    fn cells_are_trimmed() {
        check(&[(
            b"email , role\n  ada@example.com  ,\tmember \n",
            vec![row(2, "ada@example.com", Some("member"))],
        )]);
    }

    #[test]
    fn a_missing_or_empty_role_cell_is_none() {
        check(&[
            (
                b"email,role\nada@example.com\n",
                vec![row(2, "ada@example.com", None)],
            ),
            (
                b"email,role\nada@example.com,\n",
                vec![row(2, "ada@example.com", None)],
            ),
            (
                b"email\nada@example.com\n",
                vec![row(2, "ada@example.com", None)],
            ),
        ]);
    }

    #[test]
    fn a_missing_email_cell_is_an_empty_email() {
        check(&[(b"role,email\nadmin\n", vec![row(2, "", Some("admin"))])]);
    }

    #[test]
    fn formula_cells_come_through_as_plain_text() {
        check(&[
            (
                b"email,role\n\"=HYPERLINK(\"\"http://x\"\")\",member\n",
                vec![row(2, "=HYPERLINK(\"http://x\")", Some("member"))],
            ),
            (
                b"email,role\n=HYPERLINK(\"http://x\"),@SUM(1+1)\n",
                vec![row(2, "=HYPERLINK(\"http://x\")", Some("@SUM(1+1)"))],
            ),
        ]);
    }

    #[test]
    fn non_ascii_utf8_is_kept() {
        check(&[(
            "email,role\nzoë@exämple.com,member\n".as_bytes(),
            vec![row(2, "zoë@exämple.com", Some("member"))],
        )]);
    }

    #[test]
    fn a_header_without_data_rows_gives_no_rows() {
        check(&[(b"email,role\n", vec![]), (b"email,role\r\n\r\n", vec![])]);
    }

    #[test]
    fn an_empty_file_is_refused() {
        check_errors(&[
            (b"", CsvError::Empty),
            (b"\n\r\n\n", CsvError::Empty),
            (b"\xef\xbb\xbf", CsvError::Empty),
            (b"  \n,,\n", CsvError::Empty),
        ]);
    }

    #[test]
    fn a_header_without_an_email_column_is_refused() {
        check_errors(&[
            (
                b"name,role\nAda,member\n",
                CsvError::NoEmailColumn { line: 1 },
            ),
            (
                b"ada@example.com,member\n",
                CsvError::NoEmailColumn { line: 1 },
            ),
            (b"\nemails,role\n", CsvError::NoEmailColumn { line: 2 }),
        ]);
    }

    #[test]
    fn text_that_is_not_utf8_is_refused_with_its_line() {
        check_errors(&[
            (
                b"email,role\nada@example.com,member\nzo\xeb@example.com,member\n",
                CsvError::NotUtf8 { line: 3 },
            ),
            (b"\xff\xfee\x00m\x00", CsvError::NotUtf8 { line: 1 }),
            (
                b"email,name\r\n\r\nada@example.com,Zo\xeb\r\n",
                CsvError::NotUtf8 { line: 3 },
            ),
        ]);
    }

    #[test]
    fn a_cell_over_10_kb_is_refused_with_its_line() {
        let long_cell = format!(
            "email\nada@example.com\n{}@example.com\n",
            "a".repeat(11_000)
        );
        check_errors(&[(long_cell.as_bytes(), CsvError::RowTooLong { line: 3 })]);
    }

    #[test]
    fn an_unclosed_quote_is_refused_without_reading_the_rest() {
        let mut input =
            b"email,role\r\nada@example.com,member\r\n\"grace@example.com,admin\r\n".to_vec();
        for _ in 0..100_000 {
            input.extend_from_slice(b"someone@example.com,member\r\n");
        }
        let mut tail = Counting {
            inner: input.as_slice(),
            read: 0,
        };
        let result: Result<Vec<_>, _> = CsvRows::new(&mut tail).unwrap().collect();
        assert_eq!(result, Err(CsvError::RowTooLong { line: 3 }));
        assert!(
            tail.read <= MAX_ROW_BYTES + 4 * BUFFER_BYTES,
            "read {} bytes of {}",
            tail.read,
            input.len()
        );
    }

    #[test]
    fn more_rows_than_the_limit_are_refused() {
        let mut input = String::from("email\n");
        for i in 0..4 {
            input.push_str(&format!("p{i}@example.com\n\n"));
        }
        let at_limit: Result<Vec<_>, _> = CsvRows::new(input.as_bytes())
            .unwrap()
            .max_rows(4)
            .collect();
        assert_eq!(at_limit.map(|rows| rows.len()), Ok(4));
        let over: Result<Vec<_>, _> = CsvRows::new(input.as_bytes())
            .unwrap()
            .max_rows(3)
            .collect();
        assert_eq!(over, Err(CsvError::TooManyRows { max: 3 }));
    }

    #[test]
    fn nothing_is_yielded_after_an_error() {
        let mut rows =
            CsvRows::new(&b"email\nada@example.com\n\xff\ngrace@example.com\n"[..]).unwrap();
        assert!(matches!(rows.next(), Some(Ok(_))));
        assert_eq!(rows.next(), Some(Err(CsvError::NotUtf8 { line: 3 })));
        assert_eq!(rows.next(), None);
    }

    #[test]
    fn every_error_message_says_what_to_do() {
        let errors = [
            CsvError::Empty,
            CsvError::NoEmailColumn { line: 1 },
            CsvError::NotUtf8 { line: 7 },
            CsvError::RowTooLong { line: 7 },
            CsvError::TooManyRows { max: 5000 },
        ];
        for err in errors {
            let text = err.to_string();
            assert!(text.ends_with('.') && text.len() > 40, "{text}");
        }
        assert!(CsvError::NotUtf8 { line: 7 }.to_string().contains("Line 7"));
    }

    struct Counting<'a> {
        inner: &'a [u8],
        read: usize,
    }

    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read += n;
            Ok(n)
        }
    }

    /// Hands out one byte per read, so that a reader can stop between the CR and the LF of
    /// a line break.
    struct ByteByByte<'a>(&'a [u8]);

    impl Read for ByteByByte<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn resuming_at_any_row_reads_the_rest_with_the_same_line_numbers() {
        let inputs: [&[u8]; 6] = [
            b"email,role\nada@example.com,member\ngrace@example.com,admin\nbob@example.com,\n",
            b"\xef\xbb\xbfrole,EMAIL\r\nmember,ada@example.com\r\n\r\n\r\nadmin,grace@example.com\r\nx,bob@example.com",
            b"email,note\n\"ada@example.com\",\"two\nlines\"\n\n,\ngrace@example.com,\"a,b\"\nbob@example.com,x\n",
            b"email\nada@example.com\n\n\n\ngrace@example.com\n",
            b"email,role\rada@example.com,member\r\rgrace@example.com,admin\rbob@example.com\r",
            b"email\r\nada@example.com\rgrace@example.com\n\r\nbob@example.com\r\n",
        ];
        for input in inputs {
            let whole = read_all(input).unwrap();
            for k in 0..whole.len() {
                for byte_by_byte in [false, true] {
                    let mut first = if byte_by_byte {
                        CsvRows::new(Box::new(ByteByByte(input)) as Box<dyn Read>)
                    } else {
                        CsvRows::new(Box::new(input) as Box<dyn Read>)
                    }
                    .unwrap();
                    let columns = first.columns();
                    let head: Vec<_> = first.by_ref().take(k).map(Result::unwrap).collect();
                    let at = first.position();
                    let rest: Vec<_> = CsvRows::resume(&input[at.offset as usize..], at, columns)
                        .map(Result::unwrap)
                        .collect();

                    let joined: Vec<_> = head.into_iter().chain(rest).collect();
                    assert_eq!(
                        joined,
                        whole,
                        "resumed after {k} rows (read byte by byte: {byte_by_byte}) of {:?}",
                        String::from_utf8_lossy(input)
                    );
                }
            }
        }
    }

    #[test]
    fn lone_cr_line_endings_give_the_same_rows_and_lines() {
        check(&[
            (
                b"email,role\rada@example.com,member\rgrace@example.com,admin\r",
                vec![
                    row(2, "ada@example.com", Some("member")),
                    row(3, "grace@example.com", Some("admin")),
                ],
            ),
            (
                b"email\r\r\rada@example.com\r\"two\rlines\"\rgrace@example.com",
                vec![
                    row(4, "ada@example.com", None),
                    row(5, "two\rlines", None),
                    row(7, "grace@example.com", None),
                ],
            ),
            (
                b"email\r\nada@example.com\rgrace@example.com\nbob@example.com\r\n",
                vec![
                    row(2, "ada@example.com", None),
                    row(3, "grace@example.com", None),
                    row(4, "bob@example.com", None),
                ],
            ),
        ]);
    }
}
