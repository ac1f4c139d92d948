//! The upload bucket: where admins PUT import files (through a presigned URL) and where each
//! import's report is written. Keys are built here only:
//!
//! - `imports/<tenant>/<import id>.csv`: the upload; its S3 event starts `csv-import`, whose
//!   notification filter is this prefix and suffix.
//! - `reports/<tenant>/<import id>.csv`: the per-row report, outside that filter so that
//!   writing it starts nothing.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use serde::{Deserialize, Serialize};

use crate::domain::{ImportId, TenantId};

/// S3's smallest part (all but the last): a report buffers this much before it uploads a
/// part.
pub const MIN_PART_BYTES: usize = 5 * 1024 * 1024;

/// A part's buffer: S3's minimum and room for the page of report lines (1,000 lines, a few
/// hundred bytes each unless the cells are very long) that carries it past the minimum. A
/// longer page still fits: the buffer then grows as any `Vec` does.
const PART_BUFFER_BYTES: usize = MIN_PART_BYTES + 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("s3 {operation} failed: {message}")]
    S3 {
        operation: &'static str,
        message: String,
    },
    /// The multipart upload a report was going on with no longer exists: aborted by hand or
    /// by the bucket's lifecycle rule. Its parts are gone; the report must start again.
    #[error("s3 {operation} failed: the multipart upload no longer exists")]
    UploadGone { operation: &'static str },
}

fn s3_error(operation: &'static str, err: impl std::fmt::Display) -> UploadError {
    UploadError::S3 {
        operation,
        message: err.to_string(),
    }
}

/// A failed request on a multipart upload: `UploadGone` when S3 says the upload id is
/// unknown, so that the caller can start the report again rather than retry forever.
fn multipart_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> UploadError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if err.as_service_error().and_then(|e| e.code()) == Some("NoSuchUpload") {
        UploadError::UploadGone { operation }
    } else {
        s3_error(operation, aws_sdk_s3::error::DisplayErrorContext(err))
    }
}

#[derive(Clone)]
pub struct Uploads {
    client: Client,
    bucket: String,
}

/// The parts of an upload key: tenant and import id.
pub fn parse_upload_key(key: &str) -> Option<(TenantId, ImportId)> {
    let rest = key.strip_prefix("imports/")?;
    let (tenant, file) = rest.split_once('/')?;
    let id = file.strip_suffix(".csv")?;
    Some((TenantId::parse(tenant).ok()?, ImportId::parse(id)?))
}

pub fn upload_key(tenant: &TenantId, id: &ImportId) -> String {
    format!("imports/{tenant}/{id}.csv")
}

pub fn report_key(tenant: &TenantId, id: &ImportId) -> String {
    format!("reports/{tenant}/{id}.csv")
}

impl Uploads {
    /// The client for `bucket`. Path-style addressing when an endpoint override is set
    /// (the local emulator serves buckets by path, not by host).
    pub fn new(sdk: &aws_types::SdkConfig, bucket: impl Into<String>) -> Self {
        let path_style = std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(path_style)
            .build();
        Self {
            client: Client::from_conf(config),
            bucket: bucket.into(),
        }
    }

    /// For callers that configured their S3 client themselves.
    pub fn with_client(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// A URL that lets its holder PUT one object at `key` until it expires.
    pub async fn presign_put(&self, key: &str, valid: Duration) -> Result<String, UploadError> {
        let config = PresigningConfig::expires_in(valid).map_err(|e| s3_error("presign", e))?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| s3_error("presign put", e))?;
        Ok(request.uri().to_owned())
    }

    /// A URL to download `key` until it expires.
    pub async fn presign_get(&self, key: &str, valid: Duration) -> Result<String, UploadError> {
        let config = PresigningConfig::expires_in(valid).map_err(|e| s3_error("presign", e))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_type("text/csv; charset=utf-8")
            .presigned(config)
            .await
            .map_err(|e| s3_error("presign get", e))?;
        Ok(request.uri().to_owned())
    }

    /// The object's size and a stream of its bytes from `offset` on. `None` if it is absent.
    pub async fn open(
        &self,
        key: &str,
        offset: u64,
    ) -> Result<Option<(u64, ByteStream)>, UploadError> {
        let mut request = self.client.get_object().bucket(&self.bucket).key(key);
        if offset > 0 {
            request = request.range(format!("bytes={offset}-"));
        }
        match request.send().await {
            Ok(out) => {
                let remaining = out.content_length.unwrap_or(0).max(0) as u64;
                Ok(Some((offset + remaining, out.body)))
            }
            Err(err) => {
                let service = err.as_service_error();
                if service.is_some_and(|e| e.is_no_such_key()) {
                    return Ok(None);
                }
                // A range that starts at the end of the file: nothing is left to read.
                if err
                    .raw_response()
                    .is_some_and(|r| r.status().as_u16() == 416)
                {
                    return Ok(Some((offset, ByteStream::from_static(b""))));
                }
                Err(s3_error(
                    "get object",
                    aws_sdk_s3::error::DisplayErrorContext(err),
                ))
            }
        }
    }

    /// Starts writing a report: one object if it stays under one part, else a multipart
    /// upload whose parts the caller sends when [`ReportWriter::part_ready`] says so.
    pub fn start_report(&self, key: &str) -> ReportWriter<'_> {
        self.resume_report(key, None)
    }

    /// Goes on with a report whose first parts were uploaded by an earlier invocation.
    pub fn resume_report(&self, key: &str, upload: Option<MultipartState>) -> ReportWriter<'_> {
        ReportWriter {
            uploads: self,
            key: key.to_owned(),
            buffer: Vec::new(),
            upload,
        }
    }
}

/// A multipart upload in progress: enough to go on with it in another process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartState {
    pub upload_id: String,
    /// The uploaded parts' ETags, in part-number order from 1.
    pub etags: Vec<String>,
}

/// Writes a report of any size in bounded memory. The caller sends a part whenever
/// [`part_ready`](Self::part_ready) says so, and can record the returned state between
/// parts, so that a report too long for one invocation is finished by the next.
pub struct ReportWriter<'a> {
    uploads: &'a Uploads,
    key: String,
    buffer: Vec<u8>,
    upload: Option<MultipartState>,
}

impl ReportWriter<'_> {
    pub fn write(&mut self, bytes: &[u8]) {
        // One allocation per part: a buffer left to grow by doubling passes S3's minimum at
        // 8 MiB of capacity and copies itself on the way (the 1M-row bench's peak showed it).
        if self.buffer.capacity() == 0 {
            self.buffer
                .reserve_exact(PART_BUFFER_BYTES.max(bytes.len()));
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Whether enough is buffered for a part (S3 refuses smaller ones but the last).
    pub fn part_ready(&self) -> bool {
        self.buffer.len() >= MIN_PART_BYTES
    }

    /// Uploads what is buffered as the next part; the upload's state, to record.
    pub async fn send_part(&mut self) -> Result<&MultipartState, UploadError> {
        let client = &self.uploads.client;
        let upload = match self.upload.take() {
            Some(upload) => upload,
            None => {
                let out = client
                    .create_multipart_upload()
                    .bucket(&self.uploads.bucket)
                    .key(&self.key)
                    .content_type("text/csv; charset=utf-8")
                    .send()
                    .await
                    .map_err(|e| s3_error("create multipart upload", e))?;
                MultipartState {
                    upload_id: out.upload_id.unwrap_or_default(),
                    etags: Vec::new(),
                }
            }
        };
        let number = upload.etags.len() as i32 + 1;
        let sent = client
            .upload_part()
            .bucket(&self.uploads.bucket)
            .key(&self.key)
            .upload_id(&upload.upload_id)
            .part_number(number)
            .body(ByteStream::from(std::mem::take(&mut self.buffer)))
            .send()
            .await;
        let upload = self.upload.insert(upload);
        // After a failed part the buffered lines are gone: the caller gives up this writer
        // and a rerun reads them again from the last recorded progress.
        let out = sent.map_err(|e| multipart_error("upload part", e))?;
        upload.etags.push(out.e_tag.unwrap_or_default());
        Ok(upload)
    }

    /// Writes what is left and completes the object.
    pub async fn finish(mut self) -> Result<(), UploadError> {
        let client = &self.uploads.client;
        if self.upload.is_none() {
            client
                .put_object()
                .bucket(&self.uploads.bucket)
                .key(&self.key)
                .content_type("text/csv; charset=utf-8")
                .body(ByteStream::from(std::mem::take(&mut self.buffer)))
                .send()
                .await
                .map_err(|e| s3_error("put object", e))?;
            return Ok(());
        }
        if !self.buffer.is_empty() {
            self.send_part().await?;
        }
        let Some(upload) = self.upload.take() else {
            return Ok(());
        };
        let parts = upload
            .etags
            .into_iter()
            .zip(1..)
            .map(|(etag, number)| {
                CompletedPart::builder()
                    .part_number(number)
                    .e_tag(etag)
                    .build()
            })
            .collect();
        client
            .complete_multipart_upload()
            .bucket(&self.uploads.bucket)
            .key(&self.key)
            .upload_id(upload.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| multipart_error("complete multipart upload", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_keys_round_trip_and_nothing_else_parses() {
        let tenant = TenantId::parse("acme").unwrap();
        let id = ImportId::generate();
        assert_eq!(
            parse_upload_key(&upload_key(&tenant, &id)),
            Some((tenant.clone(), id.clone()))
        );
        for key in [
            report_key(&tenant, &id),
            format!("imports/acme/{id}.csv.tmp"),
            format!("imports/acme/x/{id}.csv"),
            "imports/acme/short.csv".to_owned(),
            format!("imports/ACME!/{id}.csv"),
            String::new(),
        ] {
            assert_eq!(parse_upload_key(&key), None, "{key}");
        }
    }
}
