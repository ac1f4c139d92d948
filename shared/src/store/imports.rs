//! CSV imports: the import record (status, counts, checkpoint, lease) and one marker per row.
//!
//! The row markers make an import exactly-once. A row's user, its email claim and its marker
//! are written in one transaction, so a redelivered event or a rerun after a crash finds
//! the marker and neither invites twice nor loses the row; the marker also records whether
//! the mail was sent, so no row is mailed twice. The markers, read in line order, are the
//! per-row report; `ttl` removes them (and the import) after [`RETENTION_DAYS`].

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::items::{EmailItem, UserItem, keys, rfc3339};
use super::{ConditionalError, Store, StoreError, User, applied, av, decode, encode, encode_value};
use crate::csv_rows::{Columns, Position};
use crate::domain::{ImportId, TenantId, UserId};
use crate::uploads::MultipartState;

/// Days an import, its row markers and its report stay readable.
pub const RETENTION_DAYS: i64 = 30;
/// Rejected rows kept on the import record itself (all of them are in the report).
pub const MAX_LISTED_ERRORS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    WaitingForUpload,
    Processing,
    Completed,
    Failed,
}

impl ImportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WaitingForUpload => "waiting_for_upload",
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

/// Where a paused import reads on: the file position after the last settled batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub position: Position,
    pub columns: Columns,
}

/// A report being written: its uploaded parts hold every line up to `through`, and the
/// import ends as `failure` says (completed if `None`) once the rest is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportProgress {
    pub upload: MultipartState,
    pub through: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// A rejected row, as listed on the import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowErrorEntry {
    pub line: u64,
    pub email: String,
    pub code: String,
    pub detail: String,
}

/// Counts settled since the last checkpoint, added to the import's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub total: u64,
    pub invited: u64,
    pub rejected: u64,
    pub mailed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Import {
    pub id: ImportId,
    pub tenant: TenantId,
    pub created_by: UserId,
    pub send_email: bool,
    pub status: ImportStatus,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub upload_expires_at: DateTime<Utc>,
    #[serde(default, with = "rfc3339::option")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub counts: Counts,
    #[serde(default)]
    pub errors: Vec<RowErrorEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_key: Option<String>,
    /// How far the report is written, once every row is settled and the report is longer
    /// than one part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_progress: Option<ReportProgress>,
    /// Who holds the import now (a request id), while it is processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_owner: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct ImportItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    ttl: i64,
    #[serde(flatten)]
    import: Import,
}

/// What happened to one row. Written once; only `mail` changes afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowMarker {
    pub line: u64,
    pub email: String,
    #[serde(default)]
    pub role: Option<String>,
    pub outcome: RowOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RowOutcome {
    Invited {
        user_id: UserId,
        mail: MailState,
        /// Why SES refused the mail, when `mail` is `failed`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mail_error: Option<String>,
    },
    Rejected {
        code: String,
        detail: String,
    },
}

/// A row's mail. `Sending` is written before the send: a rerun that finds it cannot know
/// whether SES took the message, so it does not send again (never two mails) and reports
/// the row as invited with its mail unconfirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailState {
    NotRequested,
    Sending,
    Sent,
    Failed,
}

#[derive(Serialize, Deserialize)]
struct RowItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    ttl: i64,
    #[serde(flatten)]
    row: RowMarker,
}

fn retention_ttl(from: DateTime<Utc>) -> i64 {
    (from + chrono::Duration::days(RETENTION_DAYS)).timestamp()
}

/// The outcome of writing an invited row.
#[derive(Debug)]
pub enum CreateRowUser {
    Created,
    /// This row was settled before (a redelivery or a rerun): its marker.
    AlreadySettled(RowMarker),
    /// The address has an account; `same_import` when an earlier row of this import made it.
    EmailTaken {
        same_import: bool,
    },
}

impl Store {
    pub async fn create_import(&self, import: &Import) -> Result<(), StoreError> {
        const OPERATION: &str = "create_import";
        let (pk, sk) = keys::import(&import.id);
        let item = encode(
            OPERATION,
            ImportItem {
                pk,
                sk,
                ttl: retention_ttl(import.created_at),
                import: import.clone(),
            },
        )?;
        if self.put_new(OPERATION, item).await? {
            Ok(())
        } else {
            // Ids are random: a clash is a fault, never a retry.
            Err(StoreError::Service {
                operation: OPERATION,
                code: "ConditionalCheckFailedException".into(),
                message: "an import with this id exists".into(),
                transient: false,
            })
        }
    }

    pub async fn get_import(&self, id: &ImportId) -> Result<Option<Import>, StoreError> {
        const OPERATION: &str = "get_import";
        self.get(OPERATION, keys::import(id))
            .await?
            .map(|item| decode::<ImportItem>(OPERATION, item).map(|i| i.import))
            .transpose()
    }

    /// Takes the import for `owner` until `lease_until` (epoch seconds): only when it is
    /// waiting or processing and nobody else holds a live lease. `None` otherwise.
    pub async fn claim_import(
        &self,
        id: &ImportId,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<Import>, StoreError> {
        const OPERATION: &str = "claim_import";
        let result = self
            .update_import(id)
            .update_expression("SET #status = :processing, lease_owner = :owner, lease_until = :until")
            .condition_expression(
                "#status IN (:waiting, :processing) AND (attribute_not_exists(lease_until) OR lease_until < :now)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":processing", av(ImportStatus::Processing.as_str()))
            .expression_attribute_values(":waiting", av(ImportStatus::WaitingForUpload.as_str()))
            .expression_attribute_values(":owner", av(owner))
            .expression_attribute_values(":until", num(lease_until.timestamp()))
            .expression_attribute_values(":now", num(now.timestamp()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out.attributes.unwrap_or_default();
                Ok(Some(decode::<ImportItem>(OPERATION, item)?.import))
            }
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(None),
            Err(e) => Err(StoreError::sdk(OPERATION, e)),
        }
    }

    /// Records a settled batch: adds its counts, appends its listed errors, moves the
    /// checkpoint from `previous` to `next` and renews the lease. `Ok(false)` if the lease was
    /// lost. Moving from `previous` makes it idempotent: if the answer to an applied update is
    /// lost and the SDK retries, the retry fails its condition and is recognised as applied.
    #[allow(clippy::too_many_arguments)]
    pub async fn checkpoint_import(
        &self,
        id: &ImportId,
        owner: &str,
        previous: Option<&Checkpoint>,
        next: &Checkpoint,
        counts: Counts,
        errors: &[RowErrorEntry],
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const OPERATION: &str = "checkpoint_import";
        let mut request = self
            .update_import(id)
            .update_expression(
                "SET checkpoint = :c, lease_until = :until, errors = list_append(if_not_exists(errors, :none), :e), \
                 #counts.#total = #counts.#total + :t, #counts.invited = #counts.invited + :i, \
                 #counts.rejected = #counts.rejected + :r, #counts.mailed = #counts.mailed + :m",
            )
            // `total` is a reserved word, `counts` nearly so.
            .expression_attribute_names("#counts", "counts")
            .expression_attribute_names("#total", "total")
            .expression_attribute_values(":c", encode_value(OPERATION, next)?)
            .expression_attribute_values(":e", encode_value(OPERATION, errors)?)
            .expression_attribute_values(":none", AttributeValue::L(vec![]))
            .expression_attribute_values(":until", num(lease_until.timestamp()))
            .expression_attribute_values(":owner", av(owner))
            .expression_attribute_values(":t", num(counts.total as i64))
            .expression_attribute_values(":i", num(counts.invited as i64))
            .expression_attribute_values(":r", num(counts.rejected as i64))
            .expression_attribute_values(":m", num(counts.mailed as i64));
        request = match previous {
            None => request
                .condition_expression("lease_owner = :owner AND attribute_not_exists(checkpoint)"),
            Some(previous) => request
                .condition_expression(
                    "lease_owner = :owner AND checkpoint.#position.#offset = :prev",
                )
                .expression_attribute_names("#position", "position")
                .expression_attribute_names("#offset", "offset")
                .expression_attribute_values(":prev", num(previous.position.offset as i64)),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                let current = self.get_import(id).await?;
                Ok(current.is_some_and(|i| {
                    i.lease_owner.as_deref() == Some(owner) && i.checkpoint.as_ref() == Some(next)
                }))
            }
            Err(e) => Err(StoreError::sdk(OPERATION, e)),
        }
    }

    /// Lets the lease go now, so that the continuation can claim the import at once.
    pub async fn release_import(&self, id: &ImportId, owner: &str) -> Result<bool, StoreError> {
        const OPERATION: &str = "release_import";
        let result = self
            .update_import(id)
            .update_expression("REMOVE lease_until, lease_owner")
            .condition_expression("lease_owner = :owner")
            .expression_attribute_values(":owner", av(owner))
            .send()
            .await;
        applied(OPERATION, result)
    }

    /// Records how far the report is written and renews the lease; `Ok(false)` if the lease
    /// was lost. Setting absolute values makes a retried update harmless.
    pub async fn save_report_progress(
        &self,
        id: &ImportId,
        owner: &str,
        progress: &ReportProgress,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const OPERATION: &str = "save_report_progress";
        let result = self
            .update_import(id)
            .update_expression("SET report_progress = :progress, lease_until = :until")
            .condition_expression("lease_owner = :owner")
            .expression_attribute_values(":progress", encode_value(OPERATION, progress)?)
            .expression_attribute_values(":until", num(lease_until.timestamp()))
            .expression_attribute_values(":owner", av(owner))
            .send()
            .await;
        applied(OPERATION, result)
    }

    /// Ends the import as completed or failed (with the reason), if `owner` still holds it.
    pub async fn finish_import(
        &self,
        id: &ImportId,
        owner: &str,
        status: ImportStatus,
        failure: Option<&str>,
        report_key: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const OPERATION: &str = "finish_import";
        let (pk, sk) = keys::import(id);
        let mut set = vec!["#status = :status", "finished_at = :at"];
        let mut request = self
            .update_at((pk, sk))
            .condition_expression("lease_owner = :owner")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", av(status.as_str()))
            .expression_attribute_values(":at", av(super::items::timestamp(at)))
            .expression_attribute_values(":owner", av(owner));
        if let Some(failure) = failure {
            set.push("failure = :failure");
            request = request.expression_attribute_values(":failure", av(failure));
        }
        if let Some(key) = report_key {
            set.push("report_key = :report");
            request = request.expression_attribute_values(":report", av(key));
        }
        let result = request
            .update_expression(format!(
                "SET {} REMOVE lease_until, lease_owner, checkpoint, report_progress",
                set.join(", ")
            ))
            .send()
            .await;
        applied(OPERATION, result)
    }

    /// Writes the invited user, its email claim (tagged with the import) and the row's
    /// marker in one transaction.
    pub async fn create_row_user(
        &self,
        import: &ImportId,
        user: &User,
        marker: &RowMarker,
    ) -> Result<CreateRowUser, StoreError> {
        const OPERATION: &str = "create_row_user";
        let mut claim = EmailItem::new(&user.email, &user.id, &user.tenant);
        claim.import = Some(import.clone());
        let items = vec![
            self.put(
                OPERATION,
                encode(OPERATION, self.row_item(import, marker))?,
                Some("attribute_not_exists(PK)"),
            )?,
            self.put(
                OPERATION,
                encode(OPERATION, claim)?,
                Some("attribute_not_exists(PK)"),
            )?,
            self.put(
                OPERATION,
                encode(OPERATION, UserItem::new(user.clone()))?,
                Some("attribute_not_exists(PK)"),
            )?,
        ];
        match self.transact(OPERATION, items).await {
            Ok(()) => Ok(CreateRowUser::Created),
            Err(ConditionalError::Store(e)) => Err(e),
            // Which condition failed: the marker (settled before) or the address (taken)?
            Err(ConditionalError::Conflict) => {
                if let Some(marker) = self.get_row(import, marker.line).await? {
                    return Ok(CreateRowUser::AlreadySettled(marker));
                }
                let claim = self.get(OPERATION, keys::email(&user.email)).await?;
                let same_import = claim
                    .map(|item| decode::<EmailItem>(OPERATION, item))
                    .transpose()?
                    .is_some_and(|c| c.import.as_ref() == Some(import));
                Ok(CreateRowUser::EmailTaken { same_import })
            }
        }
    }

    /// Writes a rejected row's marker; the existing marker if the row was settled before.
    pub async fn put_rejected_row(
        &self,
        import: &ImportId,
        marker: &RowMarker,
    ) -> Result<Option<RowMarker>, StoreError> {
        const OPERATION: &str = "put_rejected_row";
        let item = encode(OPERATION, self.row_item(import, marker))?;
        if self.put_new(OPERATION, item).await? {
            Ok(None)
        } else {
            self.get_row(import, marker.line).await
        }
    }

    pub async fn get_row(
        &self,
        import: &ImportId,
        line: u64,
    ) -> Result<Option<RowMarker>, StoreError> {
        const OPERATION: &str = "get_row";
        self.get(OPERATION, keys::import_row(import, line))
            .await?
            .map(|item| decode::<RowItem>(OPERATION, item).map(|i| i.row))
            .transpose()
    }

    /// Moves a row's mail from `from` to `to` (with SES's reason when it failed);
    /// `Ok(false)` if it was not in `from`.
    pub async fn set_row_mail(
        &self,
        import: &ImportId,
        line: u64,
        from: MailState,
        to: MailState,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        const OPERATION: &str = "set_row_mail";
        let mut request = self
            .update_at(keys::import_row(import, line))
            .condition_expression("#outcome.#mail = :from")
            .expression_attribute_names("#outcome", "outcome")
            .expression_attribute_names("#mail", "mail")
            .expression_attribute_values(":from", encode_value(OPERATION, from)?)
            .expression_attribute_values(":to", encode_value(OPERATION, to)?);
        request = match error {
            Some(error) => request
                .update_expression("SET #outcome.#mail = :to, #outcome.mail_error = :error")
                .expression_attribute_values(":error", av(error)),
            None => request.update_expression("SET #outcome.#mail = :to"),
        };
        applied(OPERATION, request.send().await)
    }

    /// A page of an import's row markers in line order, from after `after` (a line).
    pub async fn import_rows(
        &self,
        import: &ImportId,
        after: Option<u64>,
        limit: i32,
    ) -> Result<(Vec<RowMarker>, Option<u64>), StoreError> {
        const OPERATION: &str = "import_rows";
        let (pk, _) = keys::import(import);
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :row)")
            .expression_attribute_values(":pk", av(pk.clone()))
            .expression_attribute_values(":row", av(keys::IMPORT_ROW_PREFIX))
            .limit(limit);
        if let Some(line) = after {
            let (_, sk) = keys::import_row(import, line);
            query = query
                .exclusive_start_key("PK", av(pk))
                .exclusive_start_key("SK", av(sk));
        }
        let out = query
            .send()
            .await
            .map_err(|e| StoreError::sdk(OPERATION, e))?;
        let rows = out
            .items()
            .iter()
            .map(|item| decode::<RowItem>(OPERATION, item.clone()).map(|i| i.row))
            .collect::<Result<Vec<_>, _>>()?;
        let next = out
            .last_evaluated_key
            .is_some()
            .then(|| rows.last().map(|r| r.line))
            .flatten();
        Ok((rows, next))
    }

    /// An `UpdateItem` of the import's record.
    fn update_import(&self, id: &ImportId) -> UpdateItemFluentBuilder {
        self.update_at(keys::import(id))
    }

    fn row_item(&self, import: &ImportId, marker: &RowMarker) -> RowItem {
        let (pk, sk) = keys::import_row(import, marker.line);
        RowItem {
            pk,
            sk,
            ttl: retention_ttl(Utc::now()),
            row: marker.clone(),
        }
    }
}

fn num(n: i64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}
