//! Function `csv-import`: invites the people of an uploaded CSV file, row by row, exactly once.
//!
//! It runs on the upload's S3 event, or on its own continuation event. The file is read as a
//! stream (a parser thread feeds batches through a small channel, so memory stays flat for
//! any size) and each batch's rows are written concurrently. After each batch the import
//! records a checkpoint (file position, counts) and renews its lease; when the invocation
//! nears its deadline it lets the lease go and invokes itself to continue from there. The
//! report, written from the row markers once every row is settled, goes on the same way, part
//! by part.
//!
//! Exactly once: each row's user, email claim and row marker are one transaction (see
//! [`crate::store::imports`]), so a redelivered event, a concurrent duplicate, or a rerun after
//! a crash finds the marker and counts the row as it was settled. A row's mail is marked
//! `sending` before SES is called, so a rerun never mails a row a second time. Rows that fail
//! for a transient reason are retried; if they keep failing, the invocation fails without a
//! checkpoint and Lambda's retry resumes from the last one.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::app::App;
use crate::auth::Caller;
use crate::config::ImportConfig;
use crate::csv_rows::{CsvError, CsvRow, CsvRows};
use crate::domain::{ImportId, MAX_EMAIL_LEN, UserId, UserStatus};
use crate::events::{self, Actor, Kind, LifecycleEvent};
use crate::mail::Mailer;
use crate::ops::invite::{self, RowError};
use crate::store::imports::{
    Checkpoint, Counts, CreateRowUser, Import, ImportStatus, MAX_LISTED_ERRORS, MailState,
    ReportProgress, RowErrorEntry, RowMarker, RowOutcome,
};
use crate::store::items::now;
use crate::store::{StoreError, Tenant, User};
use crate::token::LinkToken;
use crate::uploads::{self, UploadError, Uploads};

/// Rows read, settled and checkpointed together.
pub const BATCH_ROWS: usize = 500;
/// Rows written (and mailed) at once within a batch.
pub const CONCURRENCY: usize = 32;
/// Most data rows one import takes.
pub const MAX_ROWS: u64 = 1_000_000;
/// Attempts at a row whose write fails for a transient reason.
const ROW_ATTEMPTS: u32 = 4;

/// What starts this function: the bucket's notification, or its own continuation.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ImportEvent {
    Continue(Continue),
    S3(S3Event),
}

/// An S3 notification: of each record, only the object key is used (read leniently, so
/// that a field S3 adds or leaves out cannot make the import miss its upload).
#[derive(Debug, Deserialize)]
pub struct S3Event {
    #[serde(rename = "Records")]
    pub records: Vec<S3Record>,
}

#[derive(Debug, Deserialize)]
pub struct S3Record {
    pub s3: S3Entity,
}

#[derive(Debug, Deserialize)]
pub struct S3Entity {
    pub object: S3Object,
}

#[derive(Debug, Deserialize)]
pub struct S3Object {
    pub key: String,
}

/// The event a paused import sends itself.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Continue {
    pub continue_import: String,
}

/// Invokes this function again, asynchronously, to continue an import.
pub struct Continuation {
    pub client: aws_sdk_lambda::Client,
    pub function_name: String,
}

pub struct Importer<M: Mailer> {
    pub app: App<M>,
    pub uploads: Uploads,
    pub config: ImportConfig,
    pub continuation: Option<Continuation>,
}

/// What one invocation did with each import it was given.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    Failed,
    /// Paused at a checkpoint; the continuation takes it on.
    Continued,
    /// Nothing to do: unknown key or import, already finished, or the lease was lost.
    Skipped,
}

/// Why an invocation must fail so that Lambda retries it (it resumes from the checkpoint).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("import {0} is being processed by another invocation; retry later")]
    Busy(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("upload bucket: {0}")]
    Upload(#[from] UploadError),
    #[error("continuation could not be invoked: {0}")]
    Continuation(String),
}

/// Why the import as a whole fails; each says what to fix.
#[derive(Debug, thiserror::Error)]
enum FileProblem {
    #[error("{0}")]
    Csv(#[from] CsvError),
    #[error(
        "The file is a spreadsheet workbook, not CSV. Save it as 'CSV UTF-8' in your spreadsheet program and upload that."
    )]
    Workbook,
    #[error(
        "The file is {size} bytes; an import takes at most {max} bytes. Split it into smaller files."
    )]
    TooLarge { size: u64, max: u64 },
    #[error("The file has more than {MAX_ROWS} rows of people; split it into smaller files.")]
    TooManyRows,
    #[error("No file was uploaded for this import.")]
    Missing,
    #[error("The admin who started this import can no longer invite people into this tenant.")]
    NotAllowed,
}

pub async fn handle<M: Mailer>(
    importer: &Importer<M>,
    event: ImportEvent,
    request_id: &str,
    deadline: Instant,
) -> Result<Vec<Outcome>, ImportError> {
    let ids: Vec<ImportId> = match event {
        ImportEvent::Continue(c) => ImportId::parse(&c.continue_import).into_iter().collect(),
        ImportEvent::S3(event) => event
            .records
            .iter()
            .filter_map(|record| {
                // S3 event keys are URL-encoded, with `+` for a space.
                let key = &record.s3.object.key;
                let key = percent_encoding::percent_decode_str(&key.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned();
                let parsed = uploads::parse_upload_key(&key);
                if parsed.is_none() {
                    tracing::warn!(key = %key, "not an import upload; ignored");
                }
                parsed.map(|(_, id)| id)
            })
            .collect(),
    };
    let mut outcomes = Vec::new();
    for id in ids {
        outcomes.push(run(importer, &id, request_id, deadline).await?);
    }
    Ok(outcomes)
}

/// Works on one import until it finishes, the deadline nears, or the lease is lost.
#[tracing::instrument(name = "csv_import", skip_all, fields(import_id = %id))]
pub async fn run<M: Mailer>(
    importer: &Importer<M>,
    id: &ImportId,
    owner: &str,
    deadline: Instant,
) -> Result<Outcome, ImportError> {
    let store = &importer.app.store;
    let lease = chrono::Duration::seconds(importer.config.lease.as_secs() as i64);
    let Some(import) = store.claim_import(id, owner, now(), now() + lease).await? else {
        return match store.get_import(id).await? {
            None => {
                tracing::warn!("no such import; ignored");
                Ok(Outcome::Skipped)
            }
            Some(i) if matches!(i.status, ImportStatus::Completed | ImportStatus::Failed) => {
                tracing::info!(status = i.status.as_str(), "import already finished");
                Ok(Outcome::Skipped)
            }
            Some(_) => Err(ImportError::Busy(id.to_string())),
        };
    };
    tracing::info!(tenant = %import.tenant, "import claimed");
    let mut job = Job {
        importer,
        import,
        owner: owner.to_owned(),
        listed_errors: 0,
    };
    job.listed_errors = job.import.errors.len();
    // Every row was settled by an earlier invocation, which paused while writing the report.
    let step = match &job.import.report_progress {
        Some(progress) => Step::Finished(progress.failure.clone()),
        None => job.process(deadline).await?,
    };
    match step {
        Step::Finished(failure) => job.finish(failure, deadline).await,
        Step::Paused => job.pause().await,
        Step::LeaseLost => Ok(Outcome::Skipped),
    }
}

enum Step {
    /// Every row is settled, or the file cannot be read on: why the import failed, if it did.
    Finished(Option<String>),
    Paused,
    LeaseLost,
}

struct Job<'a, M: Mailer> {
    importer: &'a Importer<M>,
    import: Import,
    owner: String,
    listed_errors: usize,
}

impl Step {
    fn finished(problem: FileProblem) -> Self {
        Self::Finished(Some(problem.to_string()))
    }
}

/// A row's outcome, and its `Invitation Created` event if this run invited it.
struct Settled {
    marker: RowMarker,
    created: Option<LifecycleEvent>,
}

impl Settled {
    /// A rejected row, or one settled earlier (by a run that died or an event delivered
    /// twice): nothing to announce.
    fn silent(marker: RowMarker) -> Self {
        Self {
            marker,
            created: None,
        }
    }
}

/// A batch of rows and where the reader stood after its last row.
type Batch = Result<(Vec<CsvRow>, Checkpoint), FileProblem>;

impl<M: Mailer> Job<'_, M> {
    async fn process(&mut self, deadline: Instant) -> Result<Step, ImportError> {
        let app = &self.importer.app;
        let Some(tenant) = app.store.get_tenant(&self.import.tenant).await? else {
            return Ok(Step::finished(FileProblem::NotAllowed));
        };
        let Some(caller) = self.actor().await? else {
            return Ok(Step::finished(FileProblem::NotAllowed));
        };
        let checkpoint = self.import.checkpoint;
        let offset = checkpoint.map_or(0, |c| c.position.offset);
        let key = uploads::upload_key(&tenant.id, &self.import.id);
        let Some((size, body)) = self.importer.uploads.open(&key, offset).await? else {
            return Ok(Step::finished(FileProblem::Missing));
        };
        if size > self.importer.config.max_bytes {
            return Ok(Step::finished(FileProblem::TooLarge {
                size,
                max: self.importer.config.max_bytes,
            }));
        }

        let (tx, mut rx) = mpsc::channel::<Batch>(2);
        let reader = tokio_util::io::SyncIoBridge::new(body.into_async_read());
        let parser = tokio::task::spawn_blocking(move || parse(reader, checkpoint, tx));
        let mut previous = checkpoint;
        let step = loop {
            let Some(batch) = rx.recv().await else {
                break Step::Finished(None);
            };
            let (rows, next) = match batch {
                Ok(batch) => batch,
                Err(problem) => break Step::finished(problem),
            };
            if self.import.counts.total + rows.len() as u64 > MAX_ROWS {
                break Step::finished(FileProblem::TooManyRows);
            }
            let (counts, errors) = self.settle(&caller, &tenant, rows).await?;
            if !self
                .checkpoint(previous.as_ref(), next, counts, &errors)
                .await?
            {
                break Step::LeaseLost;
            }
            previous = Some(next);
            if self.out_of_time(deadline) {
                break Step::Paused;
            }
        };
        drop(rx);
        parser.abort();
        Ok(step)
    }

    /// Whether to hand on to the continuation: too little of this invocation is left for
    /// another batch or report part.
    fn out_of_time(&self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        left < self.importer.config.reserve && self.importer.continuation.is_some()
    }

    /// The admin who started the import, if they may still invite into its tenant.
    async fn actor(&self) -> Result<Option<Caller>, ImportError> {
        let user = self
            .importer
            .app
            .store
            .get_user(&self.import.created_by)
            .await?;
        Ok(user
            .filter(|u| u.status == UserStatus::Active)
            .map(|user| Caller { user })
            .filter(|c| c.require_manager_of(&self.import.tenant, "tenant").is_ok()))
    }

    /// Settles every row of a batch (concurrently) and counts the outcomes.
    async fn settle(
        &mut self,
        caller: &Caller,
        tenant: &Tenant,
        rows: Vec<CsvRow>,
    ) -> Result<(Counts, Vec<RowErrorEntry>), ImportError> {
        let mut seen = HashSet::new();
        let checked: Vec<_> = rows
            .into_iter()
            .map(|row| {
                let checked = invite::check_row(
                    &row.email,
                    row.role.as_deref(),
                    None,
                    &tenant.id,
                    caller,
                    &mut seen,
                );
                (row, checked)
            })
            .collect();
        let reserved = match self.import.send_email {
            true => self.mail_budget(tenant, &checked).await?,
            false => None,
        };
        let send_email = reserved.is_some();
        let settled: Vec<Result<Settled, StoreError>> = futures::stream::iter(checked)
            .map(|(row, checked)| self.settle_row(caller, tenant, row, checked, send_email))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let settled = settled.into_iter().collect::<Result<Vec<_>, _>>()?;
        let (mut markers, created): (Vec<_>, Vec<_>) =
            settled.into_iter().map(|s| (s.marker, s.created)).unzip();
        // Rows this run invited, and its own rows a crashed run settled (see `try_row`); the
        // checkpoint follows, so a batch is announced again only if a crash comes before it.
        let created: Vec<_> = created.into_iter().flatten().collect();
        events::emit(self.importer.app.events.as_ref(), &created).await;
        let mut counts = Counts::default();
        let mut errors = Vec::new();
        if let Some(reserved) = reserved {
            let sent = markers
                .iter()
                .filter(|m| {
                    matches!(
                        &m.outcome,
                        RowOutcome::Invited {
                            mail: MailState::Sent,
                            ..
                        }
                    )
                })
                .count();
            reserved.settle(&self.importer.app, sent).await;
        }
        markers.sort_by_key(|m| m.line);
        for marker in markers {
            counts.total += 1;
            match &marker.outcome {
                RowOutcome::Invited { mail, .. } => {
                    counts.invited += 1;
                    counts.mailed += u64::from(*mail == MailState::Sent);
                }
                RowOutcome::Rejected { code, detail } => {
                    counts.rejected += 1;
                    if self.listed_errors < MAX_LISTED_ERRORS {
                        self.listed_errors += 1;
                        errors.push(RowErrorEntry {
                            line: marker.line,
                            email: marker.email.clone(),
                            code: code.clone(),
                            detail: detail.clone(),
                        });
                    }
                }
            }
        }
        Ok((counts, errors))
    }

    /// Takes this batch's mails from the tenant's hourly budget; `None` if it is spent (the
    /// rows are then invited without mail, and the report says so).
    async fn mail_budget(
        &self,
        tenant: &Tenant,
        checked: &[(CsvRow, Result<invite::Candidate, RowError>)],
    ) -> Result<Option<invite::MailReservation>, ImportError> {
        let wanted = checked.iter().filter(|(_, c)| c.is_ok()).count() as u32;
        let app = &self.importer.app;
        Ok(invite::spend_invite_mail(app, &tenant.id, wanted)
            .await?
            .ok())
    }

    /// One row, retried while its failure is transient.
    async fn settle_row(
        &self,
        caller: &Caller,
        tenant: &Tenant,
        row: CsvRow,
        checked: Result<invite::Candidate, RowError>,
        send_email: bool,
    ) -> Result<Settled, StoreError> {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match self
                .try_row(caller, tenant, &row, checked.as_ref(), send_email)
                .await
            {
                Err(err) if err.is_transient() && attempt < ROW_ATTEMPTS => {
                    tracing::warn!(line = row.line, error = %err, "row failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn try_row(
        &self,
        caller: &Caller,
        tenant: &Tenant,
        row: &CsvRow,
        checked: Result<&invite::Candidate, &RowError>,
        send_email: bool,
    ) -> Result<Settled, StoreError> {
        let store = &self.importer.app.store;
        let import = &self.import.id;
        let rejected = |err: &RowError| RowMarker {
            line: row.line,
            email: clip(&row.email),
            role: row.role.as_deref().map(clip),
            outcome: RowOutcome::Rejected {
                code: err.code().to_owned(),
                detail: err.to_string(),
            },
        };
        let candidate = match checked {
            Ok(candidate) => candidate,
            Err(err) => {
                let marker = rejected(err);
                let marker = store
                    .put_rejected_row(import, &marker)
                    .await?
                    .unwrap_or(marker);
                return Ok(Settled::silent(marker));
            }
        };
        let app = &self.importer.app;
        let id = UserId::generate();
        let token = send_email.then(|| LinkToken::generate(&id));
        let user = User {
            import_id: Some(import.clone()),
            ..invite::invited_user(
                app,
                caller,
                tenant,
                candidate,
                id.clone(),
                token.as_ref(),
                now(),
            )
        };
        let marker = RowMarker {
            line: row.line,
            email: candidate.email.to_string(),
            role: Some(candidate.role.as_str().to_owned()),
            outcome: RowOutcome::Invited {
                user_id: id,
                mail: if token.is_some() {
                    MailState::Sending
                } else {
                    MailState::NotRequested
                },
                mail_error: None,
            },
        };
        match store.create_row_user(import, &user, &marker).await? {
            CreateRowUser::AlreadySettled(existing) => {
                // Only a rerun after a crash finds its own rows settled, and the crash may
                // have come before their batch was announced: announce them again (at least
                // once, as EventBridge delivers; `user.id` tells a repeat).
                let created = match &existing.outcome {
                    RowOutcome::Invited { user_id, mail, .. } => {
                        store.get_user(user_id).await?.map(|user| {
                            invitation_created(&user, caller, import, *mail == MailState::Sent)
                        })
                    }
                    RowOutcome::Rejected { .. } => None,
                };
                Ok(Settled {
                    created,
                    marker: existing,
                })
            }
            CreateRowUser::EmailTaken { same_import } => {
                let err = if same_import {
                    RowError::DuplicateInRequest
                } else {
                    RowError::AlreadyExists
                };
                let marker = rejected(&err);
                let marker = store
                    .put_rejected_row(import, &marker)
                    .await?
                    .unwrap_or(marker);
                Ok(Settled::silent(marker))
            }
            CreateRowUser::Created => {
                let expires_at = user.invite_expires_at.unwrap_or_else(now);
                let created =
                    |email_sent: bool| invitation_created(&user, caller, import, email_sent);
                let Some(token) = token else {
                    return Ok(Settled {
                        created: Some(created(false)),
                        marker,
                    });
                };
                let sent =
                    invite::send_invitation(app, caller, tenant, &user, &token, expires_at).await;
                let (state, error) = match &sent {
                    Ok(()) => (MailState::Sent, None),
                    Err(body) => (MailState::Failed, Some(body.detail.as_str())),
                };
                // If this write is lost, the row stays `sending`: reported, never re-sent.
                if let Err(err) = store
                    .set_row_mail(import, row.line, MailState::Sending, state, error)
                    .await
                {
                    tracing::warn!(line = row.line, error = %err, "mail outcome not recorded");
                }
                let RowOutcome::Invited { user_id, .. } = marker.outcome else {
                    unreachable!("an invited row's marker")
                };
                Ok(Settled {
                    created: Some(created(sent.is_ok())),
                    marker: RowMarker {
                        outcome: RowOutcome::Invited {
                            user_id,
                            mail: state,
                            mail_error: error.map(str::to_owned),
                        },
                        ..marker
                    },
                })
            }
        }
    }

    async fn checkpoint(
        &mut self,
        previous: Option<&Checkpoint>,
        next: Checkpoint,
        counts: Counts,
        errors: &[RowErrorEntry],
    ) -> Result<bool, ImportError> {
        let lease = chrono::Duration::seconds(self.importer.config.lease.as_secs() as i64);
        let store = &self.importer.app.store;
        let saved = store
            .checkpoint_import(
                &self.import.id,
                &self.owner,
                previous,
                &next,
                counts,
                errors,
                now() + lease,
            )
            .await?;
        if saved {
            let totals = &mut self.import.counts;
            totals.total += counts.total;
            totals.invited += counts.invited;
            totals.rejected += counts.rejected;
            totals.mailed += counts.mailed;
        }
        Ok(saved)
    }

    /// Writes the report, going on from `resumed` if an earlier invocation began it.
    /// `Some(outcome)` when this invocation stops before the end (paused, or lease lost).
    async fn write_report(
        &self,
        key: &str,
        resumed: Option<&ReportProgress>,
        failure: &Option<String>,
        deadline: Instant,
    ) -> Result<Option<Outcome>, ImportError> {
        let store = &self.importer.app.store;
        let uploads = &self.importer.uploads;
        let (mut report, mut through) = match resumed {
            Some(progress) => (
                uploads.resume_report(key, Some(progress.upload.clone())),
                Some(progress.through),
            ),
            None => {
                let mut report = uploads.start_report(key);
                report.write(REPORT_HEADER.as_bytes());
                (report, None)
            }
        };
        let lease = chrono::Duration::seconds(self.importer.config.lease.as_secs() as i64);
        let mut chunk = String::new();
        loop {
            if report.part_ready() {
                let progress = ReportProgress {
                    upload: report.send_part().await?.clone(),
                    through: through.unwrap_or(0),
                    failure: failure.clone(),
                };
                if !store
                    .save_report_progress(&self.import.id, &self.owner, &progress, now() + lease)
                    .await?
                {
                    return Ok(Some(Outcome::Skipped));
                }
                if self.out_of_time(deadline) {
                    return self.pause().await.map(Some);
                }
            }
            let (rows, next) = store.import_rows(&self.import.id, through, 1000).await?;
            chunk.clear();
            for row in &rows {
                report_line(&mut chunk, row);
            }
            report.write(chunk.as_bytes());
            through = rows.last().map(|r| r.line).or(through);
            if next.is_none() {
                break;
            }
        }
        report.finish().await?;
        Ok(None)
    }

    /// Writes the report from the row markers and ends the import. A report longer than
    /// one part records its progress after each part, and pauses there when the invocation
    /// is nearly out of time: a million-row report outlasts what is left after the rows.
    async fn finish(
        &self,
        failure: Option<String>,
        deadline: Instant,
    ) -> Result<Outcome, ImportError> {
        let store = &self.importer.app.store;
        let key = uploads::report_key(&self.import.tenant, &self.import.id);
        let resumed = self.import.report_progress.as_ref();
        let written = match self.write_report(&key, resumed, &failure, deadline).await {
            // The upload an earlier invocation began is gone (aborted, or expired by the
            // bucket's lifecycle rule) and its parts with it: write the report again, once.
            Err(ImportError::Upload(UploadError::UploadGone { operation })) => {
                tracing::warn!(operation, "report upload gone; writing the report again");
                self.write_report(&key, None, &failure, deadline).await?
            }
            other => other?,
        };
        if let Some(stopped) = written {
            return Ok(stopped);
        }
        let status = match failure {
            None => ImportStatus::Completed,
            Some(_) => ImportStatus::Failed,
        };
        let finished = store
            .finish_import(
                &self.import.id,
                &self.owner,
                status,
                failure.as_deref(),
                Some(&key),
                now(),
            )
            .await?;
        if !finished {
            return Ok(Outcome::Skipped);
        }
        let counts = self.import.counts;
        let event = LifecycleEvent::in_tenant(
            Kind::ImportCompleted,
            &self.import.tenant,
            Actor::User {
                id: self.import.created_by.clone(),
            },
        )
        .with("import_id", self.import.id.to_string())
        .with("status", status.as_str())
        .with("total", counts.total)
        .with("invited", counts.invited)
        .with("rejected", counts.rejected)
        .with("emails_sent", counts.mailed);
        events::emit(self.importer.app.events.as_ref(), &[event]).await;
        tracing::info!(
            tenant = %self.import.tenant,
            status = status.as_str(),
            total = counts.total,
            invited = counts.invited,
            rejected = counts.rejected,
            mailed = counts.mailed,
            failure = failure.as_deref().unwrap_or(""),
            "import finished"
        );
        Ok(match status {
            ImportStatus::Completed => Outcome::Completed,
            _ => Outcome::Failed,
        })
    }

    /// Lets the lease go and invokes the continuation, which claims the import at once.
    async fn pause(&self) -> Result<Outcome, ImportError> {
        let Some(continuation) = &self.importer.continuation else {
            return Ok(Outcome::Skipped);
        };
        self.importer
            .app
            .store
            .release_import(&self.import.id, &self.owner)
            .await?;
        let payload = serde_json::to_vec(&Continue {
            continue_import: self.import.id.to_string(),
        })
        .map_err(|e| ImportError::Continuation(e.to_string()))?;
        continuation
            .client
            .invoke()
            .function_name(&continuation.function_name)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload))
            .send()
            .await
            .map_err(|e| {
                ImportError::Continuation(aws_sdk_lambda::error::DisplayErrorContext(e).to_string())
            })?;
        tracing::info!(
            rows = self.import.counts.total,
            "import paused; continuation invoked"
        );
        Ok(Outcome::Continued)
    }
}

/// Reads the file on a blocking thread and sends batches of rows; stops at the first
/// problem with the file, or when the receiver is gone.
fn parse<R: std::io::Read>(reader: R, checkpoint: Option<Checkpoint>, tx: mpsc::Sender<Batch>) {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let rows = match checkpoint {
        Some(c) => Ok(CsvRows::resume(reader, c.position, c.columns)),
        None => match reader.fill_buf() {
            Ok(head)
                if head.starts_with(b"PK\x03\x04") || head.starts_with(b"\xd0\xcf\x11\xe0") =>
            {
                Err(FileProblem::Workbook)
            }
            _ => CsvRows::new(reader).map_err(FileProblem::from),
        },
    };
    let mut rows = match rows {
        Ok(rows) => rows,
        Err(problem) => {
            let _ = tx.blocking_send(Err(problem));
            return;
        }
    };
    loop {
        let mut batch = Vec::with_capacity(BATCH_ROWS);
        while batch.len() < BATCH_ROWS {
            match rows.next() {
                Some(Ok(row)) => batch.push(row),
                Some(Err(err)) => {
                    if !batch.is_empty() {
                        let position = Checkpoint {
                            position: rows.position(),
                            columns: rows.columns(),
                        };
                        if tx.blocking_send(Ok((batch, position))).is_err() {
                            return;
                        }
                    }
                    let _ = tx.blocking_send(Err(err.into()));
                    return;
                }
                None => break,
            }
        }
        if batch.is_empty() {
            return;
        }
        let position = Checkpoint {
            position: rows.position(),
            columns: rows.columns(),
        };
        if tx.blocking_send(Ok((batch, position))).is_err() {
            return;
        }
    }
}

const REPORT_HEADER: &str = "line,email,role,status,code,detail,user_id,email_sent\r\n";

/// The `Invitation Created` event of a row this import invited.
fn invitation_created(
    user: &User,
    caller: &Caller,
    import: &ImportId,
    email_sent: bool,
) -> LifecycleEvent {
    LifecycleEvent::about(Kind::InvitationCreated, user, Actor::admin(caller))
        .with_time("expires_at", user.invite_expires_at.unwrap_or_else(now))
        .with("email_sent", email_sent)
        .with("import_id", import.to_string())
}

/// One report line. Every cell is quoted, and a cell that a spreadsheet would read as a
/// formula (`=`, `+`, `-`, `@`, tab, CR) is prefixed with `'`, so it shows as text.
fn report_line(out: &mut String, row: &RowMarker) {
    let (status, code, detail, user_id, email_sent) = match &row.outcome {
        RowOutcome::Invited {
            user_id,
            mail,
            mail_error,
        } => (
            "invited",
            "",
            mail_error.as_deref().unwrap_or(""),
            user_id.as_str(),
            match mail {
                MailState::Sent => "true",
                MailState::Sending => "unconfirmed",
                MailState::Failed | MailState::NotRequested => "false",
            },
        ),
        RowOutcome::Rejected { code, detail } => {
            ("rejected", code.as_str(), detail.as_str(), "", "")
        }
    };
    let line = row.line.to_string();
    let cells = [
        line.as_str(),
        row.email.as_str(),
        row.role.as_deref().unwrap_or(""),
        status,
        code,
        detail,
        user_id,
        email_sent,
    ];
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&safe_cell(cell));
    }
    out.push_str("\r\n");
}

pub fn safe_cell(cell: &str) -> String {
    let formula = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let mut out = String::with_capacity(cell.len() + 3);
    out.push('"');
    if formula {
        out.push('\'');
    }
    out.push_str(&cell.replace('"', "\"\""));
    out.push('"');
    out
}

fn clip(raw: &str) -> String {
    raw.chars().take(MAX_EMAIL_LEN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_cells_cannot_be_read_as_formulas() {
        let cases = [
            (
                "=HYPERLINK(\"http://x\")",
                "\"'=HYPERLINK(\"\"http://x\"\")\"",
            ),
            ("+1", "\"'+1\""),
            ("-2", "\"'-2\""),
            ("@SUM(A1)", "\"'@SUM(A1)\""),
            ("\tx", "\"'\tx\""),
            ("ada@example.com", "\"ada@example.com\""),
            ("a,b", "\"a,b\""),
            ("", "\"\""),
        ];
        for (cell, expected) in cases {
            assert_eq!(safe_cell(cell), expected, "{cell:?}");
        }
    }

    #[test]
    fn both_event_shapes_parse() {
        let cont: ImportEvent =
            serde_json::from_str(r#"{"continue_import": "AAAAAAAAAAAAAAAAAAAAAA"}"#).unwrap();
        assert!(matches!(cont, ImportEvent::Continue(_)));
        // As moto writes it (fewer fields than AWS), and as AWS does (events/csv-import.json).
        let moto = r#"{"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventTime": "2026-11-23T15:30:17.395Z", "eventName": "ObjectCreated:Put", "s3": {"s3SchemaVersion": "1.0", "configurationId": "csv-import-Upload", "bucket": {"name": "b", "arn": "arn:aws:s3:::b"}, "object": {"key": "imports/acme/x.csv", "size": 3, "eTag": "e"}}}]}"#;
        let aws = include_str!("../../../events/csv-import.json");
        for raw in [moto, aws] {
            let s3: ImportEvent = serde_json::from_str(raw).unwrap();
            assert!(matches!(s3, ImportEvent::S3(_)));
        }
        let s3: ImportEvent = serde_json::from_str(moto).unwrap();
        assert!(matches!(s3, ImportEvent::S3(_)));
    }
}
