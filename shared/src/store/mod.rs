//! The single-table DynamoDB store.
//!
//! Key layout and item mapping live in [`items`]; this module holds the operations, each
//! one request (or one transaction) wherever the rule allows, and every invariant enforced
//! by a condition in DynamoDB rather than by a read before a write.

mod account;
mod delivery;
pub mod imports;
pub mod items;
mod lifecycle;
mod recovery;
mod users;
pub use lifecycle::Reissue;
pub use users::UserChange;
mod write;

pub use write::{Clause, Write};

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};
use chrono::{DateTime, Utc};

use crate::domain::{Email, EmailPrefix, ImportId, TenantId, UserId, UserStatus};
use crate::token::TokenHash;
pub use items::{AuditEvent, Delivery, LinkVia, Party, Tenant, User};
use items::{EmailItem, TenantItem, UserItem, keys};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("dynamodb {operation} failed ({code}): {message}")]
    Service {
        operation: &'static str,
        code: String,
        message: String,
        transient: bool,
    },
    #[error("dynamodb {operation}: item mapping failed: {source}")]
    Mapping {
        operation: &'static str,
        #[source]
        source: serde_dynamo::Error,
    },
    #[error("dynamodb {operation}: request could not be built: {message}")]
    Build {
        operation: &'static str,
        message: String,
    },
}

/// Whether a conditional write was applied: `Ok(false)` when its condition failed.
fn applied<T, E: ProvideErrorMetadata + std::fmt::Debug>(
    operation: &'static str,
    result: Result<T, SdkError<E, HttpResponse>>,
) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(StoreError::sdk(operation, e)),
    }
}

impl StoreError {
    /// Throttling, 5xx, timeouts and dropped connections: worth a 503 with Retry-After.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Service {
                transient: true,
                ..
            }
        )
    }

    fn sdk<E: ProvideErrorMetadata + std::fmt::Debug>(
        operation: &'static str,
        err: SdkError<E, HttpResponse>,
    ) -> Self {
        const TRANSIENT_CODES: &[&str] = &[
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
            "ThrottlingException",
            "InternalServerError",
            "ServiceUnavailable",
            "TransactionInProgressException",
        ];
        let (code, message, transient) = match &err {
            SdkError::ServiceError(service) => {
                let code = service.err().code().unwrap_or("Unknown").to_owned();
                let transient = TRANSIENT_CODES.contains(&code.as_str())
                    || service.raw().status().as_u16() >= 500;
                (
                    code,
                    service.err().message().unwrap_or_default().to_owned(),
                    transient,
                )
            }
            SdkError::TimeoutError(_) => {
                ("Timeout".to_owned(), "request timed out".to_owned(), true)
            }
            SdkError::DispatchFailure(_) => ("Dispatch".to_owned(), format!("{err:?}"), true),
            SdkError::ResponseError(_) => ("Response".to_owned(), format!("{err:?}"), true),
            _ => ("Construction".to_owned(), format!("{err:?}"), false),
        };
        Self::Service {
            operation,
            code,
            message,
            transient,
        }
    }

    fn build(operation: &'static str, err: impl std::fmt::Display) -> Self {
        Self::Build {
            operation,
            message: err.to_string(),
        }
    }
}

/// Why a new user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a conditional update on a user did not apply.
#[derive(Debug, thiserror::Error)]
pub enum ConditionalError {
    #[error("the item changed since it was read")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Users one filtered query of a listing reads (DynamoDB applies the filter after the read).
pub const FILTERED_READ: i32 = 100;
/// Queries one page of a listing may take.
pub const MAX_PAGE_QUERIES: u32 = 10;
/// Keys per `BatchGetItem`: DynamoDB's own limit.
const BATCH_GET_KEYS: usize = 100;
/// `BatchGetItem` requests for one chunk, the first included, while keys come back unprocessed.
const BATCH_GET_ATTEMPTS: u32 = 4;

/// A listing's filter expression (applied after the read), with the values it names; `None`
/// when the filter has nothing to drop. A state is matched as the user view shows it
/// ([`crate::ops::users::effective_status`]): an invitation past its expiry is `expired`, not
/// `invited`, even before the sweep has marked it. The timestamps are all
/// `items::timestamp`'s fixed format, so they compare as strings.
fn filter_expression(filter: &UserFilter, now: DateTime<Utc>) -> Option<FilterExpression> {
    let mut values = std::collections::BTreeMap::new();
    let mut conditions = Vec::new();
    if !filter.statuses.is_empty() {
        let mut any = Vec::new();
        for status in &filter.statuses {
            any.push(match status {
                UserStatus::Active => "#status = :active",
                UserStatus::Invited => "#status = :invited AND invite_expires_at > :now",
                UserStatus::Expired => {
                    "#status = :expired OR #status = :invited AND invite_expires_at <= :now"
                }
            });
        }
        values.insert(":now", av(items::timestamp(now)));
        values.insert(":active", av(UserStatus::Active.as_str()));
        values.insert(":invited", av(UserStatus::Invited.as_str()));
        values.insert(":expired", av(UserStatus::Expired.as_str()));
        // DynamoDB refuses values the expression does not name, and redundant parentheses.
        values.retain(|name, _| any.iter().any(|a| a.contains(name)));
        let any = any.join(" OR ");
        // AND binds tighter than OR: parentheses only where the states meet another filter.
        let several = filter.import.is_some() || filter.email_verified.is_some();
        conditions.push(if several && any.contains(" OR ") {
            format!("({any})")
        } else {
            any
        });
    }
    if let Some(import) = &filter.import {
        conditions.push("import_id = :import".to_owned());
        values.insert(":import", av(import.as_str()));
    }
    if let Some(verified) = filter.email_verified {
        conditions.push("email_verified = :verified".to_owned());
        values.insert(":verified", AttributeValue::Bool(verified));
    }
    (!conditions.is_empty()).then(|| FilterExpression {
        expression: conditions.join(" AND "),
        values: values.into_iter().collect(),
    })
}

/// See [`filter_expression`].
struct FilterExpression {
    expression: String,
    values: Vec<(&'static str, AttributeValue)>,
}

/// The fixed window of `window`'s length that `now` falls in: (start, length), in seconds.
fn window_of(window: Duration, now: DateTime<Utc>) -> (i64, i64) {
    let secs = window.as_secs().max(1) as i64;
    (now.timestamp() - now.timestamp().rem_euclid(secs), secs)
}

/// The whole seconds from `now` until the window that starts at `start` and lasts `secs` ends,
/// at least 1: a `Retry-After`.
fn seconds_left(start: i64, secs: i64, now: DateTime<Utc>) -> u64 {
    (start + secs - now.timestamp()).max(1) as u64
}

/// Which of a tenant's users a listing returns.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Only users in one of these states (none: any), as the user view shows the state: an
    /// invitation past its expiry is `expired` before the sweep has marked it.
    pub statuses: Vec<UserStatus>,
    /// Only addresses that start with this.
    pub email_prefix: Option<EmailPrefix>,
    /// Only users this CSV import invited.
    pub import: Option<ImportId>,
    /// Only users who have (or have not) proved control of their mailbox.
    pub email_verified: Option<bool>,
}

/// Where [`Store::partition_page`] reads.
pub(crate) enum Partition {
    /// A partition of the table.
    Table { pk: String },
    /// A partition of the tenant-users index whose items keep their table sort key as their
    /// index sort key, so that a cursor is still one sort key.
    TenantUsersIndex { pk: String, table_pk: String },
}

impl Partition {
    fn key_names(&self) -> (&'static str, &'static str) {
        match self {
            Self::Table { .. } => ("PK", "SK"),
            Self::TenantUsersIndex { .. } => ("GSI1PK", "GSI1SK"),
        }
    }

    fn pk(&self) -> String {
        match self {
            Self::Table { pk } | Self::TenantUsersIndex { pk, .. } => pk.clone(),
        }
    }
}

/// One page of a listing.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Clone)]
pub struct Store {
    client: Client,
    table: String,
}

pub(crate) fn av(s: impl Into<String>) -> AttributeValue {
    AttributeValue::S(s.into())
}

/// An item in its typed form; a mismatch is a [`StoreError::Mapping`] of `operation`.
fn decode<T: serde::de::DeserializeOwned>(
    operation: &'static str,
    item: HashMap<String, AttributeValue>,
) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|source| StoreError::Mapping { operation, source })
}

/// A typed value as an item; a failure is a [`StoreError::Mapping`] of `operation`.
fn encode<T: serde::Serialize>(
    operation: &'static str,
    value: T,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    serde_dynamo::to_item(value).map_err(|source| StoreError::Mapping { operation, source })
}

/// A typed value as one attribute (for an update expression's values).
fn encode_value<T: serde::Serialize>(
    operation: &'static str,
    value: T,
) -> Result<AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(value)
        .map_err(|source| StoreError::Mapping { operation, source })
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    async fn get(
        &self,
        operation: &'static str,
        key: (String, String),
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", av(key.0))
            .key("SK", av(key.1))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk(operation, e))?;
        Ok(out.item)
    }

    pub async fn get_user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        match self.get("get_user", keys::user(id)).await? {
            None => Ok(None),
            Some(item) => Ok(Some(decode::<UserItem>("get_user", item)?.user)),
        }
    }

    /// Reads many users at once, strongly consistent. An id without a user is absent from
    /// the map.
    pub async fn get_users(&self, ids: &[UserId]) -> Result<HashMap<UserId, User>, StoreError> {
        const OPERATION: &str = "get_users";
        let keys: Vec<(String, String)> = ids.iter().map(keys::user).collect();
        let mut users = HashMap::with_capacity(keys.len());
        for item in self.batch_get(OPERATION, keys).await? {
            let user = decode::<UserItem>(OPERATION, item)?.user;
            users.insert(user.id.clone(), user);
        }
        Ok(users)
    }

    /// The items at `keys` that exist, strongly consistent: one `BatchGetItem` per 100 keys,
    /// in no particular order. Keys DynamoDB leaves unprocessed (it does so under throttling)
    /// are asked for again, a few times, before the read counts as failed.
    async fn batch_get(
        &self,
        operation: &'static str,
        keys: Vec<(String, String)>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        // DynamoDB refuses a batch that names one key twice.
        let unique: Vec<(String, String)> = keys
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut items = Vec::with_capacity(unique.len());
        for chunk in unique.chunks(BATCH_GET_KEYS) {
            let mut pending: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|(pk, sk)| {
                    HashMap::from([
                        ("PK".to_owned(), av(pk.clone())),
                        ("SK".to_owned(), av(sk.clone())),
                    ])
                })
                .collect();
            for attempt in 1..=BATCH_GET_ATTEMPTS {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::build(operation, e))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| StoreError::sdk(operation, e))?;
                items.extend(
                    out.responses
                        .and_then(|mut tables| tables.remove(&self.table))
                        .unwrap_or_default(),
                );
                pending = out
                    .unprocessed_keys
                    .and_then(|mut tables| tables.remove(&self.table))
                    .map(|left| left.keys)
                    .unwrap_or_default();
                if pending.is_empty() {
                    break;
                }
                if attempt == BATCH_GET_ATTEMPTS {
                    return Err(StoreError::Service {
                        operation,
                        code: "UnprocessedKeys".to_owned(),
                        message: format!(
                            "{} keys still unprocessed after {attempt} attempts",
                            pending.len()
                        ),
                        transient: true,
                    });
                }
                tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
            }
        }
        Ok(items)
    }

    /// Resolves an address to its account through the uniqueness record.
    pub async fn find_user_id(&self, email: &Email) -> Result<Option<UserId>, StoreError> {
        match self.get("find_user_id", keys::email(email)).await? {
            None => Ok(None),
            Some(item) => Ok(Some(decode::<EmailItem>("find_user_id", item)?.user_id)),
        }
    }

    /// Whose an address is: the user that claims it, and their tenant.
    pub async fn claim_of(&self, email: &Email) -> Result<Option<(UserId, TenantId)>, StoreError> {
        match self.get("claim_of", keys::email(email)).await? {
            None => Ok(None),
            Some(item) => {
                let claim = decode::<EmailItem>("claim_of", item)?;
                Ok(Some((claim.user_id, claim.tenant)))
            }
        }
    }

    /// Creates the user and claims its email address in one transaction (with any `extra`
    /// writes, such as its audit record), so that two concurrent invitations of one address
    /// create exactly one account and nothing else.
    pub async fn create_user(
        &self,
        user: &User,
        extra: Vec<TransactWriteItem>,
    ) -> Result<(), CreateUserError> {
        const OPERATION: &str = "create_user";
        let user_item = encode(OPERATION, UserItem::new(user.clone()))?;
        let email_item = encode(
            OPERATION,
            EmailItem::new(&user.email, &user.id, &user.tenant),
        )?;
        let mut items = vec![
            self.put(OPERATION, email_item, Some("attribute_not_exists(PK)"))?,
            self.put(OPERATION, user_item, Some("attribute_not_exists(PK)"))?,
        ];
        items.extend(extra);
        match self.transact(OPERATION, items).await {
            Ok(()) => Ok(()),
            Err(ConditionalError::Conflict) => Err(CreateUserError::EmailTaken),
            Err(ConditionalError::Store(e)) => Err(e.into()),
        }
    }

    pub(crate) fn put(
        &self,
        operation: &'static str,
        item: HashMap<String, AttributeValue>,
        condition: Option<&str>,
    ) -> Result<TransactWriteItem, StoreError> {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .build()
            .map(|put| TransactWriteItem::builder().put(put).build())
            .map_err(|e| StoreError::build(operation, e))
    }

    /// Writes `item` only where no item is yet: `Ok(false)` when one was.
    pub(crate) async fn put_new(
        &self,
        operation: &'static str,
        item: HashMap<String, AttributeValue>,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await;
        applied(operation, out)
    }

    /// An `UpdateItem` of the item at `(pk, sk)` (from [`keys`]), for the caller to finish.
    pub(crate) fn update_at(&self, (pk, sk): (String, String)) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("PK", av(pk))
            .key("SK", av(sk))
    }

    /// Runs writes as one transaction. A failed condition is [`ConditionalError::Conflict`].
    ///
    /// Two kinds of retry, each for its own reason:
    /// - cancelled because another transaction touched the same items: retried with backoff and
    ///   a fresh idempotency token, because the retry will then see the winner's write;
    /// - outcome unknown after the SDK's own retries (throttled, 5xx, connection lost): one more
    ///   attempt with the SAME token, so that a write DynamoDB applied but whose answer was lost
    ///   is reported as the success it was instead of failing its own condition.
    pub(crate) async fn transact(
        &self,
        operation: &'static str,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), ConditionalError> {
        let new_token = || format!("{:032x}", rand::random::<u128>());
        let mut token = new_token();
        let mut delay = Duration::from_millis(20);
        let mut conflicts = 0;
        let mut unknown_outcomes = 0;
        loop {
            let result = self
                .client
                .transact_write_items()
                .client_request_token(&token)
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(SdkError::ServiceError(service))
                    if matches!(
                        service.err(),
                        TransactWriteItemsError::TransactionCanceledException(_)
                    ) =>
                {
                    let codes: Vec<String> = match service.err() {
                        TransactWriteItemsError::TransactionCanceledException(c) => c
                            .cancellation_reasons()
                            .iter()
                            .map(|r| r.code().unwrap_or("None").to_owned())
                            .collect(),
                        _ => vec![],
                    };
                    if codes.iter().any(|c| c == "ConditionalCheckFailed") {
                        return Err(ConditionalError::Conflict);
                    }
                    let retryable = codes.iter().any(|c| {
                        matches!(
                            c.as_str(),
                            "TransactionConflict"
                                | "ThrottlingError"
                                | "ProvisionedThroughputExceeded"
                        )
                    });
                    conflicts += 1;
                    if !retryable || conflicts > 8 {
                        return Err(StoreError::Service {
                            operation,
                            code: "TransactionCanceled".into(),
                            message: codes.join(","),
                            transient: retryable,
                        }
                        .into());
                    }
                    token = new_token();
                }
                Err(other) => {
                    let err = StoreError::sdk(operation, other);
                    unknown_outcomes += 1;
                    if !err.is_transient() || unknown_outcomes > 1 {
                        return Err(err.into());
                    }
                }
            }
            let jitter = rand::random::<u64>() % (delay.as_millis() as u64 + 1);
            tokio::time::sleep(delay + Duration::from_millis(jitter)).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }

    /// Records that the invitation mail could not be sent (the invitation itself stays).
    pub async fn record_delivery(
        &self,
        id: &UserId,
        delivery: &Delivery,
        clear_last_sent: bool,
    ) -> Result<(), StoreError> {
        let (pk, sk) = keys::user(id);
        let value = encode_value("record_delivery", delivery)?;
        let update = if clear_last_sent {
            "SET last_delivery = :d REMOVE last_invite_sent_at"
        } else {
            "SET last_delivery = :d"
        };
        self.update_at((pk, sk))
            .update_expression(update)
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":d", value)
            .send()
            .await
            .map_err(|e| StoreError::sdk("record_delivery", e))?;
        Ok(())
    }

    /// Spends an invitation token: the user becomes active only if this exact token is still
    /// the current one and the invitation has not expired, all checked inside DynamoDB. An
    /// accepted team_admin is counted in the same transaction.
    pub async fn activate_invited(
        &self,
        user: &User,
        token: &TokenHash,
        password_hash: &str,
        now: DateTime<Utc>,
        extra: Vec<TransactWriteItem>,
    ) -> Result<(), ConditionalError> {
        const OPERATION: &str = "activate_invited";
        let via = user.link_slot(crate::token::Purpose::Invite).via;
        let mut items = vec![
            Write::update(keys::user(&user.id))
                .set(
                    "#status = :active, password_hash = :ph, email_verified = :verified, updated_at = :now, accepted_at = :now \
                     REMOVE GSI2PK, GSI2SK",
                )
                .condition("#status = :invited")
                .spends_link(crate::token::Purpose::Invite, token, via, now)
                .changes_account(user)
                .name("#status", "status")
                .value(":active", av(UserStatus::Active.as_str()))
                .value(":invited", av(UserStatus::Invited.as_str()))
                .value(":ph", av(password_hash))
                // A copied link proves no mailbox.
                .value(":verified", AttributeValue::Bool(via == items::LinkVia::Email))
                .value(":now", av(items::timestamp(now)))
                .build(self, OPERATION)?,
        ];
        if user.role == crate::domain::Role::TeamAdmin {
            items.push(self.team_admin_count(OPERATION, 1)?);
        }
        items.extend(extra);
        self.transact(OPERATION, items).await
    }

    pub async fn create_tenant(&self, tenant: &Tenant) -> Result<bool, StoreError> {
        const OPERATION: &str = "create_tenant";
        let item = encode(OPERATION, TenantItem::new(tenant.clone()))?;
        self.put_new(OPERATION, item).await
    }

    pub async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        match self.get("get_tenant", keys::tenant(id)).await? {
            None => Ok(None),
            Some(item) => Ok(Some(decode::<TenantItem>("get_tenant", item)?.tenant)),
        }
    }

    pub async fn list_tenants(
        &self,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<Page<Tenant>, StoreError> {
        let (pk, _) = keys::tenant(&TenantId::admin());
        let page = self
            .partition_page::<TenantItem>(
                "list_tenants",
                Partition::Table { pk },
                false,
                cursor,
                limit,
            )
            .await?;
        Ok(Page {
            items: page.items.into_iter().map(|i| i.tenant).collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// One page of the items under one partition key, in sort-key order (or reversed). The
    /// cursor carries only the sort key; the partition is always the caller's.
    pub(crate) async fn partition_page<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        partition: Partition,
        newest_first: bool,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<Page<T>, StoreError> {
        let (pk_name, sk_name) = partition.key_names();
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(format!("{pk_name} = :pk"))
            .expression_attribute_values(":pk", av(partition.pk()))
            .scan_index_forward(!newest_first)
            .limit(limit);
        let index_of = match &partition {
            Partition::Table { .. } => None,
            Partition::TenantUsersIndex { table_pk, .. } => Some(table_pk),
        };
        if index_of.is_some() {
            query = query.index_name(items::TENANT_USERS_INDEX);
        }
        if let Some(sk) = cursor.and_then(items::decode_cursor) {
            // An index's start key holds the item's table key too.
            if let Some(table_pk) = index_of {
                query = query
                    .exclusive_start_key("PK", av(table_pk.clone()))
                    .exclusive_start_key("SK", av(sk.clone()));
            }
            query = query
                .exclusive_start_key(pk_name, av(partition.pk()))
                .exclusive_start_key(sk_name, av(sk));
        }
        let out = query
            .send()
            .await
            .map_err(|e| StoreError::sdk(operation, e))?;
        let items = out
            .items()
            .iter()
            .map(|item| decode::<T>(operation, item.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = out
            .last_evaluated_key()
            .and_then(|k| k.get(sk_name))
            .and_then(|v| v.as_s().ok())
            .map(|s| items::encode_cursor(s));
        Ok(Page { items, next_cursor })
    }

    /// A page of a tenant's users, ordered by email, narrowed by `filter`. A page with a
    /// status, import or verification filter reads at most [`MAX_PAGE_QUERIES`] ×
    /// [`FILTERED_READ`] users: when few of a large tenant's users match (ten accepted of
    /// 100,000 imported), it comes back short, or empty, with a cursor, instead of reading the
    /// whole tenant in one request.
    /// The cursor carries only the sort key; the partition comes from the caller's tenant,
    /// so a forged cursor cannot reach another tenant.
    pub async fn list_users(
        &self,
        tenant: &TenantId,
        filter: &UserFilter,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<Page<User>, StoreError> {
        let gsi_pk = keys::tenant_users(tenant);
        let mut users = Vec::new();
        let mut queries = 0;
        let mut start = cursor.and_then(items::decode_cursor);
        // DynamoDB refuses a start key outside the key condition; such a cursor came from
        // another listing, and this one has nothing after it.
        if let (Some(prefix), Some(sk)) = (&filter.email_prefix, &start)
            && !prefix.is_prefix_of(sk)
        {
            return Ok(Page {
                items: vec![],
                next_cursor: None,
            });
        }
        // One filter for the whole page, its `now` included, whichever query reads it.
        let after_read = filter_expression(filter, items::now());
        // With a status filter a page may come back short; keep reading until it is full.
        loop {
            queries += 1;
            // Limit bounds the items a query reads, before the filter. Without one, the
            // remainder of the page is read; with one, a full read, and matches beyond the page
            // are left for the next (its cursor is then the last user returned).
            let read = if after_read.is_some() {
                FILTERED_READ
            } else {
                limit - users.len() as i32
            };
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(items::TENANT_USERS_INDEX)
                .expression_attribute_values(":pk", av(gsi_pk.clone()))
                .limit(read);
            // The sort key starts with the address, so a prefix is a key condition: only the
            // matching range is read, however many users the tenant has.
            query = match &filter.email_prefix {
                Some(prefix) => query
                    .key_condition_expression("GSI1PK = :pk AND begins_with(GSI1SK, :prefix)")
                    .expression_attribute_values(":prefix", av(prefix.as_str())),
                None => query.key_condition_expression("GSI1PK = :pk"),
            };
            if let Some(after_read) = &after_read {
                query = query.filter_expression(&after_read.expression);
                if !filter.statuses.is_empty() {
                    query = query.expression_attribute_names("#status", "status");
                }
                for (name, value) in &after_read.values {
                    query = query.expression_attribute_values(*name, value.clone());
                }
            }
            if let Some(sk) = &start {
                let id = sk.rsplit('#').next().unwrap_or_default().to_owned();
                let Some(id) = UserId::parse(&id) else {
                    return Ok(Page {
                        items: vec![],
                        next_cursor: None,
                    });
                };
                let (pk, ssk) = keys::user(&id);
                query = query
                    .exclusive_start_key("GSI1PK", av(gsi_pk.clone()))
                    .exclusive_start_key("GSI1SK", av(sk.clone()))
                    .exclusive_start_key("PK", av(pk))
                    .exclusive_start_key("SK", av(ssk));
            }
            let out = query
                .send()
                .await
                .map_err(|e| StoreError::sdk("list_users", e))?;
            let mut items = out.items().iter();
            for item in items.by_ref().take(limit as usize - users.len()) {
                users.push(decode::<UserItem>("list_users", item.clone())?.user);
            }
            start = if items.next().is_some() {
                users.last().map(|u| keys::tenant_user(&u.email, &u.id))
            } else {
                out.last_evaluated_key()
                    .and_then(|k| k.get("GSI1SK"))
                    .and_then(|v| v.as_s().ok())
                    .cloned()
            };
            if start.is_none() || users.len() >= limit as usize || queries == MAX_PAGE_QUERIES {
                break;
            }
        }
        Ok(Page {
            items: users,
            next_cursor: start.map(|s| items::encode_cursor(&s)),
        })
    }

    /// A transaction item that empties `key`'s current window, for a write that ends what the
    /// counter holds back (a new password ends a sign-in lock). Earlier windows no longer count.
    pub fn rate_window_clear(
        &self,
        key: &str,
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<TransactWriteItem, StoreError> {
        let (start, _) = window_of(window, now);
        Write::delete(keys::rate(key, start)).build(self, "rate_window_clear")
    }

    /// The count of the current fixed window of `key` and the seconds until it ends, without
    /// adding to it.
    pub async fn rate_window(
        &self,
        key: &str,
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<(u64, u64), StoreError> {
        let (start, window_secs) = window_of(window, now);
        let retry_after = seconds_left(start, window_secs, now);
        let count = self
            .get("rate_window", keys::rate(key, start))
            .await?
            .and_then(|item| item.get("hits")?.as_n().ok()?.parse().ok())
            .unwrap_or(0);
        Ok((count, retry_after))
    }

    /// Fixed-window counter: adds `cost` to the window's count unless that would pass
    /// `limit`. Returns the seconds until the window ends when refused.
    pub async fn rate_limit(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
        cost: u32,
        now: DateTime<Utc>,
    ) -> Result<Result<(), u64>, StoreError> {
        if cost == 0 {
            return Ok(Ok(()));
        }
        let (start, window_secs) = window_of(window, now);
        let retry_after = seconds_left(start, window_secs, now);
        if cost > limit {
            return Ok(Err(retry_after));
        }
        let out = self
            .update_at(keys::rate(key, start))
            .update_expression("ADD hits :cost SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(hits) OR hits <= :max")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":cost", AttributeValue::N(cost.to_string()))
            .expression_attribute_values(":max", AttributeValue::N((limit - cost).to_string()))
            .expression_attribute_values(
                ":ttl",
                AttributeValue::N((start + 2 * window_secs).to_string()),
            )
            .send()
            .await;
        match out {
            Ok(_) => Ok(Ok(())),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(Err(retry_after))
            }
            Err(e) => Err(StoreError::sdk("rate_limit", e)),
        }
    }

    /// Gives `cost` back to the window a [`Store::rate_limit`] at `at` charged, never taking
    /// the count below zero (a window already gone, or smaller, is left as it is).
    pub async fn rate_refund(
        &self,
        key: &str,
        window: Duration,
        cost: u32,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if cost == 0 {
            return Ok(());
        }
        let (start, _) = window_of(window, at);
        let out = self
            .update_at(keys::rate(key, start))
            .update_expression("ADD hits :back")
            .condition_expression("hits >= :cost")
            .expression_attribute_values(":back", AttributeValue::N(format!("-{cost}")))
            .expression_attribute_values(":cost", AttributeValue::N(cost.to_string()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(e) => Err(StoreError::sdk("rate_refund", e)),
        }
    }
}
