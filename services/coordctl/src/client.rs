//! The gateway's HTTP API, typed. Problem documents become errors that say what the
//! server said.

use std::pin::Pin;

use anyhow::Context;
use coord_proto::Accepted;
use coord_proto::Route;
use coord_proto::read::{DistrictList, DistrictReport, ProvinceSummary, TimelinePage};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The kinds of record `GET /v1/{kind}/{id}` serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RecordKind {
    /// An inspection or supervision (kiểm tra, giám sát).
    Inspection,
    /// An information exchange (trao đổi thông tin).
    Exchange,
    /// A discipline case (hồ sơ kỷ luật).
    DisciplineCase,
}

impl RecordKind {
    fn path(self) -> &'static str {
        match self {
            RecordKind::Inspection => "/v1/inspections",
            RecordKind::Exchange => "/v1/exchanges",
            RecordKind::DisciplineCase => "/v1/discipline-cases",
        }
    }
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    tokens: crate::tokens::TokenSet,
}

/// An error answer of the gateway (a problem document).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub detail: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.detail)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// Worth retrying with the same idempotency key: a service was briefly unavailable.
    pub fn is_transient(&self) -> bool {
        matches!(self.status, 503 | 504)
            && matches!(
                self.code.as_str(),
                "service_unavailable" | "upstream_timeout" | "request_timeout" | "nats_unavailable"
            )
    }
}

async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> anyhow::Result<T> {
    let status = response.status();
    let body = response.bytes().await?;
    if status.is_success() {
        return serde_json::from_slice(&body)
            .with_context(|| format!("unexpected answer ({status})"));
    }
    let problem: Value = serde_json::from_slice(&body).unwrap_or_default();
    Err(ApiError {
        status: status.as_u16(),
        code: problem["code"].as_str().unwrap_or("error").to_owned(),
        detail: problem["detail"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into()),
    }
    .into())
}

impl Client {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            tokens: Default::default(),
        })
    }

    /// The bearer tokens requests carry (see [`crate::tokens::TokenSet`]).
    pub fn with_tokens(mut self, tokens: crate::tokens::TokenSet) -> Self {
        self.tokens = tokens;
        self
    }

    /// `request` with the bearer token of `office` (`None`: the default one), if any.
    fn authorized(
        &self,
        request: reqwest::RequestBuilder,
        office: Option<&str>,
    ) -> reqwest::RequestBuilder {
        match self.tokens.for_office(office) {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        let response = self
            .authorized(self.http.get(format!("{}{path}", self.base)), None)
            .query(query)
            .send()
            .await
            .with_context(|| format!("cannot reach the gateway at {}", self.base))?;
        decode(response).await
    }

    /// A GET whose answer is text (a checkpoint note, an NDJSON export).
    pub async fn get_text(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<String> {
        let response = self
            .authorized(self.http.get(format!("{}{path}", self.base)), None)
            .query(query)
            .send()
            .await
            .with_context(|| format!("cannot reach the gateway at {}", self.base))?;
        if !response.status().is_success() {
            return decode::<Value>(response).await.map(|v| v.to_string());
        }
        response.text().await.with_context(|| {
            format!("the gateway cut {path} short (it could not read on to the end); nothing was kept, retry")
        })
    }

    pub async fn post_json<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self
            .authorized(self.http.post(format!("{}{path}", self.base)), None)
            .send()
            .await
            .with_context(|| format!("cannot reach the gateway at {}", self.base))?;
        decode(response).await
    }

    /// A GET whose answer is read by the caller (a streamed export); a problem
    /// document becomes an [`ApiError`].
    pub async fn get_stream(
        &self,
        path: &str,
        query: &[(&str, String)],
        accept: &str,
    ) -> anyhow::Result<reqwest::Response> {
        let response = self
            .authorized(self.http.get(format!("{}{path}", self.base)), None)
            .query(query)
            .header("accept", accept)
            .send()
            .await
            .with_context(|| format!("cannot reach the gateway at {}", self.base))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            decode::<Value>(response).await.map(|_| unreachable!())
        }
    }

    /// A POST of a text body (an import chunk).
    pub async fn post_text<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        content_type: &str,
        body: String,
    ) -> anyhow::Result<T> {
        let response = self
            .authorized(self.http.post(format!("{}{path}", self.base)), None)
            .query(query)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .with_context(|| format!("cannot reach the gateway at {}", self.base))?;
        decode(response).await
    }

    fn status_query(term: Option<&str>, min_position: Option<u64>) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(t) = term {
            q.push(("term", t.to_owned()));
        }
        if let Some(p) = min_position {
            q.push(("min_position", p.to_string()));
        }
        q
    }

    pub async fn province(
        &self,
        term: Option<&str>,
        min_position: Option<u64>,
    ) -> anyhow::Result<ProvinceSummary> {
        self.get_json(
            "/v1/status/province",
            &Self::status_query(term, min_position),
        )
        .await
    }

    pub async fn districts(&self, term: Option<&str>) -> anyhow::Result<DistrictList> {
        self.get_json("/v1/status/districts", &Self::status_query(term, None))
            .await
    }

    pub async fn district(&self, unit: &str, term: Option<&str>) -> anyhow::Result<DistrictReport> {
        self.get_json(
            &format!("/v1/status/districts/{unit}"),
            &Self::status_query(term, None),
        )
        .await
    }

    pub async fn timeline(&self, unit: &str, limit: u32) -> anyhow::Result<TimelinePage> {
        self.get_json(
            &format!("/v1/districts/{unit}/timeline"),
            &[("limit", limit.to_string())],
        )
        .await
    }

    /// One record as it stands now (its `version` is the `If-Match` for a next command).
    pub async fn record(&self, kind: RecordKind, id: &str) -> anyhow::Result<Value> {
        self.get_json(&format!("{}/{id}", kind.path()), &[]).await
    }

    /// Sends one command on its route, with the token of `office` (the token, not this
    /// argument, says who acts).
    pub async fn send(
        &self,
        route: &Route,
        payload: &Value,
        key: Option<&str>,
        office: Option<&str>,
        if_match: Option<u64>,
    ) -> anyhow::Result<Accepted> {
        let path = if route.id_in_path {
            let id = payload[route.id_field].as_str().with_context(|| {
                format!("{} needs `{}` (use --id)", route.command, route.id_field)
            })?;
            route.path.replace("{id}", id)
        } else {
            route.path.to_owned()
        };
        let mut request = self
            .authorized(self.http.post(format!("{}{path}", self.base)), office)
            .json(payload);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        if let Some(version) = if_match {
            request = request.header("if-match", format!("\"{version}\""));
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the gateway at {}", self.base))?;
        decode(response)
            .await
            .with_context(|| route.command.to_owned())
    }

    /// The live event stream: each item is one recorded event (JSON).
    pub async fn events(
        &self,
        after: Option<u64>,
    ) -> anyhow::Result<Pin<Box<dyn Stream<Item = anyhow::Result<Value>> + Send>>> {
        let mut query = Vec::new();
        if let Some(a) = after {
            query.push(("after", a.to_string()));
        }
        let response = self
            .authorized(self.http.get(format!("{}/v1/events", self.base)), None)
            .query(&query)
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "the event stream answered {}",
            response.status()
        );
        let bytes = response.bytes_stream();
        // Parse server-sent events: blocks separated by a blank line, `data:` lines.
        let stream = futures::stream::unfold(
            (bytes, String::new()),
            |(mut bytes, mut buffer)| async move {
                loop {
                    if let Some(end) = buffer.find("\n\n") {
                        let block: String = buffer.drain(..end + 2).collect();
                        let data: Vec<&str> = block
                            .lines()
                            .filter_map(|l| l.strip_prefix("data:"))
                            .map(str::trim_start)
                            .collect();
                        if data.is_empty() {
                            continue; // keep-alive comment
                        }
                        let item =
                            serde_json::from_str(&data.join("\n")).map_err(anyhow::Error::from);
                        return Some((item, (bytes, buffer)));
                    }
                    match bytes.next().await {
                        Some(Ok(chunk)) => {
                            buffer.push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"))
                        }
                        Some(Err(e)) => return Some((Err(e.into()), (bytes, buffer))),
                        None => return None,
                    }
                }
            },
        );
        Ok(Box::pin(stream))
    }
}
