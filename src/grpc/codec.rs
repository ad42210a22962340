//! The contract's codec: prost's, except that a request that does not decode (a `string` field
//! that is not UTF-8, say a `bundle_json` in Latin-1, or a malformed `as_of`) is the caller's
//! mistake, INVALID_ARGUMENT, where tonic-prost answers INTERNAL. Its message names the field
//! (prost's words: message and field names, the wire problem), never the bytes sent.
//!
//! The generated client uses it too, so for it an answer that does not decode is also
//! INVALID_ARGUMENT; the service's own callers use their own stubs.

use tonic::Status;
use tonic::codec::{BufferSettings, Codec as TonicCodec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

pub struct Codec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(ProstCodec::default())
    }
}

impl<T, U> TonicCodec for Codec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = CallerDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        CallerDecoder(self.0.decoder())
    }
}

pub struct CallerDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for CallerDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf)
            .map(Some)
            .map_err(|e| Status::invalid_argument(e.to_string()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn prost_names_the_field_and_never_echoes_the_bytes() {
        use prost::Message;
        // bundle_json (field 1) holding Latin-1 "Müller".
        let bytes = [0x0a, 0x06, b'M', 0xfc, b'l', b'l', b'e', b'r'];
        let e = crate::proto::EvaluateBundleRequest::decode(&bytes[..]).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("bundle_json"), "{text}");
        assert!(!text.contains("ller"), "{text}");
    }
}
