//! Reading a request's fields into its struct, with errors that name the field.
//!
//! serde's own message for a value of the wrong type (`invalid type: integer `5`, expected
//! a string`) does not say which field held it; here each field's value is deserialized on
//! its own and its error is prefixed with the field's name.

use serde::de::value::{MapAccessDeserializer, StrDeserializer};
use serde::de::{DeserializeOwned, DeserializeSeed, Error as _, MapAccess};
use serde_json::{Map, Value};

/// Reads `fields` (a request object without `op` and `id`) as a `T`.
pub(crate) fn read<T: DeserializeOwned>(fields: Map<String, Value>) -> Result<T, String> {
    let access = Fields {
        entries: fields.into_iter(),
        pending: None,
    };
    T::deserialize(MapAccessDeserializer::new(access)).map_err(|error| error.to_string())
}

/// The entries of a request object, handed out one at a time.
struct Fields {
    entries: serde_json::map::IntoIter,
    /// The entry whose key was read and whose value is next.
    pending: Option<(String, Value)>,
}

impl<'de> MapAccess<'de> for Fields {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let read = seed.deserialize(StrDeserializer::<serde_json::Error>::new(&key))?;
        self.pending = Some((key, value));
        Ok(Some(read))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let (key, value) = self
            .pending
            .take()
            .ok_or_else(|| serde_json::Error::custom("a value without its field"))?;
        seed.deserialize(value)
            .map_err(|error| serde_json::Error::custom(format!("\"{key}\": {error}")))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}
