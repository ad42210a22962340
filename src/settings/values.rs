//! The types settings are used as, read from what the settings file holds: an address or a URL
//! from its text (`""` meaning off where a setting may be off), a duration from a whole number of
//! seconds or milliseconds. A value that does not parse is refused while the file is read, and the
//! error names the setting (the TOML reader adds its path). Each writes back as it was read, so
//! the settings print in the shape of the file.

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};
use std::net::SocketAddr;
use std::time::Duration;

/// A value written as one text in the settings file.
pub trait TextSetting: Sized {
    /// What the value must be, for the error: "must be {EXPECTED}".
    const EXPECTED: &'static str;
    fn parse(text: &str) -> Option<Self>;
    fn text(&self) -> String;
}

impl TextSetting for SocketAddr {
    const EXPECTED: &'static str = "an address such as 127.0.0.1:50051";
    fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }
    fn text(&self) -> String {
        self.to_string()
    }
}

/// An `http` or `https` URL with a host, kept as written (an issuer or a base URL is compared
/// and extended as text) together with its parsed form.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpUrl {
    text: String,
    url: url::Url,
}

impl HttpUrl {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn url(&self) -> &url::Url {
        &self.url
    }
}

impl TextSetting for HttpUrl {
    const EXPECTED: &'static str =
        "an http(s) URL with a host, such as https://ehr.example.org/fhir";
    fn parse(text: &str) -> Option<Self> {
        let url = url::Url::parse(text).ok()?;
        (matches!(url.scheme(), "http" | "https") && url.host().is_some()).then(|| HttpUrl {
            text: text.to_owned(),
            url,
        })
    }
    fn text(&self) -> String {
        self.text.clone()
    }
}

impl std::str::FromStr for HttpUrl {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        HttpUrl::parse(text).ok_or_else(|| format!("must be {}", HttpUrl::EXPECTED))
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        text::deserialize(d)
    }
}

impl Serialize for HttpUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// `#[serde(with = "text")]`: a [`TextSetting`] from its text.
pub mod text {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>, T: TextSetting>(d: D) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        T::parse(&text).ok_or_else(|| D::Error::custom(format!("must be {}", T::EXPECTED)))
    }

    pub fn serialize<S: Serializer, T: TextSetting>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.text())
    }
}

/// `#[serde(with = "empty_is_off")]`: a [`TextSetting`] that may be off, written `""`.
pub mod empty_is_off {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>, T: TextSetting>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        T::parse(&text)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("must be {}, or empty", T::EXPECTED)))
    }

    pub fn serialize<S: Serializer, T: TextSetting>(
        value: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.as_ref().map(T::text).unwrap_or_default())
    }
}

/// `#[serde(with = "seconds")]`: a duration written as a whole number of seconds.
pub mod seconds {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        bounded(Duration::from_secs(u64::deserialize(d)?))
    }

    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(value.as_secs())
    }
}

/// The longest duration a setting may give: ten years, as good as without end. Longer would
/// overflow the clock's `Instant` where a deadline is set from it, and panic.
pub const LONGEST: Duration = Duration::from_secs(10 * 365 * 86_400);

fn bounded<E: serde::de::Error>(duration: Duration) -> Result<Duration, E> {
    if duration > LONGEST {
        return Err(E::custom(format!(
            "must be at most {} seconds (ten years)",
            LONGEST.as_secs()
        )));
    }
    Ok(duration)
}

/// `#[serde(with = "milliseconds")]`: a duration written as a whole number of milliseconds.
pub mod milliseconds {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        bounded(Duration::from_millis(u64::deserialize(d)?))
    }

    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    struct Sample {
        #[serde(with = "seconds")]
        wait_secs: Duration,
        #[serde(with = "milliseconds")]
        base_ms: Duration,
        #[serde(with = "text")]
        listen: SocketAddr,
        #[serde(with = "empty_is_off")]
        metrics: Option<SocketAddr>,
        #[serde(with = "empty_is_off")]
        base_url: Option<HttpUrl>,
        token_url: Option<HttpUrl>,
    }

    fn read(text: &str) -> Result<Sample, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        Sample::deserialize(toml::Value::Table(table)).map_err(|e| e.to_string())
    }

    const SAMPLE: &str = r#"
        wait_secs = 30
        base_ms = 200
        listen = "[::1]:50051"
        metrics = ""
        base_url = "https://ehr.example.org/fhir/"
        token_url = "http://127.0.0.1:8080/token"
    "#;

    #[test]
    fn each_value_is_read_as_its_type_and_written_back_as_it_was_read() {
        let sample = read(SAMPLE).unwrap();
        assert_eq!(sample.wait_secs, Duration::from_secs(30));
        assert_eq!(sample.base_ms, Duration::from_millis(200));
        assert_eq!(sample.listen, "[::1]:50051".parse::<SocketAddr>().unwrap());
        assert_eq!(sample.metrics, None);
        let base = sample.base_url.as_ref().unwrap();
        assert_eq!(base.as_str(), "https://ehr.example.org/fhir/");
        assert_eq!(base.url().host_str(), Some("ehr.example.org"));
        assert_eq!(
            serde_json::to_value(&sample).unwrap(),
            serde_json::json!({
                "wait_secs": 30, "base_ms": 200, "listen": "[::1]:50051", "metrics": "",
                "base_url": "https://ehr.example.org/fhir/",
                "token_url": "http://127.0.0.1:8080/token",
            })
        );
        let back: Sample = serde_json::from_value(serde_json::to_value(&sample).unwrap()).unwrap();
        assert_eq!(back, sample);
    }

    #[test]
    fn a_duration_past_ten_years_is_refused_naming_the_setting() {
        let longest = LONGEST.as_secs();
        let ok = SAMPLE.replace("wait_secs = 30", &format!("wait_secs = {longest}"));
        assert_eq!(read(&ok).unwrap().wait_secs, LONGEST);
        for (from, to) in [
            ("wait_secs = 30", format!("wait_secs = {}", longest + 1)),
            ("base_ms = 200", format!("base_ms = {}", i64::MAX)),
        ] {
            let err = read(&SAMPLE.replace(from, &to)).unwrap_err();
            let name = from.split(' ').next().unwrap();
            assert!(
                err.contains("at most 315360000 seconds") && err.contains(name),
                "{err}"
            );
        }
    }

    #[test]
    fn an_empty_text_is_off_and_a_set_one_is_on() {
        let on = SAMPLE.replace("metrics = \"\"", "metrics = \"0.0.0.0:9464\"");
        assert_eq!(
            read(&on).unwrap().metrics,
            Some("0.0.0.0:9464".parse().unwrap())
        );
        let off = SAMPLE.replace(
            "base_url = \"https://ehr.example.org/fhir/\"",
            "base_url = \"\"",
        );
        assert_eq!(read(&off).unwrap().base_url, None);
    }

    #[test]
    fn urls_other_than_http_with_a_host_are_refused_naming_the_setting() {
        for bad in [
            "ftp://ehr.example.org",
            "collector:4317",
            "https://",
            "not a url",
            "file:///x",
        ] {
            let err = read(&SAMPLE.replace("https://ehr.example.org/fhir/", bad)).unwrap_err();
            assert!(
                err.contains("must be an http(s) URL") && err.contains("base_url"),
                "{err}"
            );
        }
        assert!("ftp://x".parse::<HttpUrl>().is_err());
        assert!("https://x".parse::<HttpUrl>().is_ok());
        let err = read(&SAMPLE.replace("http://127.0.0.1:8080/token", "")).unwrap_err();
        assert!(err.contains("token_url"), "{err}");
    }

    #[test]
    fn addresses_must_have_an_ip_and_a_port() {
        for bad in ["9464", "localhost:9464", "127.0.0.1", "not an address"] {
            let err = read(&SAMPLE.replace("[::1]:50051", bad)).unwrap_err();
            assert!(
                err.contains("must be an address") && err.contains("listen"),
                "{err}"
            );
        }
    }

    #[test]
    fn durations_are_whole_numbers_of_their_unit() {
        for bad in ["-1", "\"30s\"", "1.5"] {
            let err = read(&SAMPLE.replace("= 30", &format!("= {bad}"))).unwrap_err();
            assert!(err.contains("wait_secs"), "{err}");
        }
    }
}
