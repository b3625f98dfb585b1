//! The upload side of a push: blob checks, cross-repository mounts, streamed uploads, manifests.

use std::io::{self, Read};

use gocompat::digest::Digest;
use sha2::{Digest as _, Sha256};

use crate::transport::{self, header, pull_scope, push_scope, Client, Method, Payload, Request};
use crate::{Error, Result};

/// What a mount request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// The registry linked the blob into the repository.
    Mounted,
    /// The registry started an upload instead, at this location.
    Upload(String),
}

/// A blob as uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedBlob {
    pub digest: String,
    pub size: u64,
}

impl Client {
    /// The size of the blob when the repository has it (`HEAD`), `None` when it does not.
    pub fn blob_size(&self, path: &str, digest: &str) -> Result<Option<u64>> {
        let url = self.url(&format!("/v2/{path}/blobs/{digest}"));
        let response = self.send(Request::new(
            Method::Head,
            url.clone(),
            vec![push_scope(path)],
        ))?;
        match response.status().as_u16() {
            200..=299 => Ok(Some(
                header(&response, "content-length")
                    .and_then(|length| length.parse().ok())
                    .unwrap_or(0),
            )),
            404 => Ok(None),
            _ => transport::expect_success(Method::Head, &url, response).map(|_| None),
        }
    }

    /// Asks the registry to link a blob of repository `from` (same registry) into `path`.
    pub fn mount_blob(&self, path: &str, digest: &str, from: &str) -> Result<Mount> {
        let url = self.url(&format!(
            "/v2/{path}/blobs/uploads/?mount={digest}&from={from}"
        ));
        let request = Request::new(
            Method::Post,
            url.clone(),
            vec![push_scope(path), pull_scope(from)],
        );
        let response = self.send(request)?;
        let status = response.status().as_u16();
        let location = header(&response, "location");
        match (status, location) {
            (201, _) => Ok(Mount::Mounted),
            (202, Some(location)) => Ok(Mount::Upload(self.resolve_location(&location))),
            _ => transport::expect_success(Method::Post, &url, response).and_then(|_| {
                Err(Error::invalid(
                    url,
                    "the registry answered a mount without an upload location",
                ))
            }),
        }
    }

    /// Starts an upload; returns its location.
    fn start_upload(&self, path: &str) -> Result<String> {
        let url = self.url(&format!("/v2/{path}/blobs/uploads/"));
        let request = Request::new(Method::Post, url.clone(), vec![push_scope(path)]);
        let response = transport::expect_success(Method::Post, &url, self.send(request)?)?;
        header(&response, "location")
            .map(|location| self.resolve_location(&location))
            .ok_or_else(|| Error::invalid(url, "the registry answered without an upload location"))
    }

    /// Uploads a blob streamed from `reader` (one chunked `PATCH`, then the `PUT` that names
    /// its digest, which is computed on the way). `location` continues an upload a mount
    /// request started. When `expected` is given, a different digest fails before the `PUT`.
    pub fn upload_blob(
        &self,
        path: &str,
        location: Option<String>,
        reader: &mut dyn Read,
        expected: Option<&str>,
    ) -> Result<UploadedBlob> {
        let location = match location {
            Some(location) => location,
            None => self.start_upload(path)?,
        };
        let mut hashing = Hashing {
            inner: reader,
            hasher: Sha256::new(),
            n_bytes: 0,
        };
        let request = Request::new(Method::Patch, location.clone(), vec![push_scope(path)])
            .header("Content-Type", "application/octet-stream")
            .body(Payload::Stream(&mut hashing));
        let response = transport::expect_success(Method::Patch, &location, self.send(request)?)?;
        let location = header(&response, "location")
            .map(|location| self.resolve_location(&location))
            .unwrap_or(location);
        let digest = Digest::from_bytes(hashing.hasher.finalize().into()).to_string();
        if let Some(expected) = expected {
            if expected != digest {
                return Err(Error::DigestMismatch {
                    what: format!("upload to {}/{path}", self.registry()),
                    expected: expected.to_string(),
                    actual: digest,
                });
            }
        }
        let size = hashing.n_bytes;
        self.finish_upload(path, &location, &digest, Payload::Empty)?;
        Ok(UploadedBlob { digest, size })
    }

    /// Uploads a small blob whole (an image config): one `POST`, one `PUT` with the bytes.
    pub fn upload_bytes(&self, path: &str, bytes: &[u8]) -> Result<UploadedBlob> {
        let digest = Digest::of(bytes).to_string();
        let location = self.start_upload(path)?;
        self.finish_upload(path, &location, &digest, Payload::Bytes(bytes))?;
        Ok(UploadedBlob {
            digest,
            size: bytes.len() as u64,
        })
    }

    fn finish_upload(
        &self,
        path: &str,
        location: &str,
        digest: &str,
        body: Payload<'_>,
    ) -> Result<()> {
        let separator = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{separator}digest={digest}");
        let request = Request::new(Method::Put, url.clone(), vec![push_scope(path)])
            .header("Content-Type", "application/octet-stream")
            .body(body);
        transport::expect_success(Method::Put, &url, self.send(request)?).map(|_| ())
    }

    /// `PUT /v2/<path>/manifests/<tag>`; returns the digest the registry gives it (checked
    /// against the bytes).
    pub fn put_manifest(
        &self,
        path: &str,
        tag: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String> {
        let url = self.url(&format!("/v2/{path}/manifests/{tag}"));
        let request = Request::new(Method::Put, url.clone(), vec![push_scope(path)])
            .header("Content-Type", media_type)
            .body(Payload::Bytes(bytes));
        let response = transport::expect_success(Method::Put, &url, self.send(request)?)?;
        let digest = Digest::of(bytes).to_string();
        if let Some(announced) = header(&response, "docker-content-digest") {
            if announced != digest {
                return Err(Error::DigestMismatch {
                    what: format!("manifest pushed to {}/{path}:{tag}", self.registry()),
                    expected: digest,
                    actual: announced,
                });
            }
        }
        Ok(digest)
    }
}

/// Hashes and counts what an upload reads.
struct Hashing<'a> {
    inner: &'a mut dyn Read,
    hasher: Sha256,
    n_bytes: u64,
}

impl Read for Hashing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n_read = self.inner.read(buf)?;
        self.hasher.update(&buf[..n_read]);
        self.n_bytes += n_read as u64;
        Ok(n_read)
    }
}
