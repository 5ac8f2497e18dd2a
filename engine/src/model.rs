//! Opening a GGUF file: checks that say exactly what is wrong with a bad file, then the weights
//! and the tokenizer, both from the file itself.

use crate::error::{Error, Result};
use crate::memory;
use crate::qwen2::Qwen2;
use crate::tokens::ChatTokenizer;
use candle_core::quantized::gguf_file;
use candle_core::Device;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// Weights plus tokenizer, ready to generate.
pub(crate) struct Model {
    pub(crate) qwen2: Qwen2,
    pub(crate) tokenizer: ChatTokenizer,
}

/// The metadata of a GGUF file, checked to be complete and of the Qwen2 architecture.
pub(crate) fn read_header(path: &Path) -> Result<(gguf_file::Content, BufReader<File>)> {
    let unreadable = |reason: String| Error::ModelUnreadable { path: path.to_owned(), reason };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::ModelNotFound { path: path.to_owned() })
        }
        Err(e) => return Err(unreadable(format!("cannot open it ({e})"))),
    };
    let file_len = file.metadata().map_err(|e| unreadable(e.to_string()))?.len();
    let mut reader = BufReader::new(file);

    let mut magic = [0u8; 4];
    if reader.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
        return Err(unreadable("it is not a GGUF file (it does not start with the GGUF magic bytes)".into()));
    }
    std::io::Seek::rewind(&mut reader).map_err(|e| unreadable(e.to_string()))?;
    let content = gguf_file::Content::read(&mut reader)
        .map_err(|e| unreadable(format!("its GGUF header is damaged or truncated ({e})")))?;

    let architecture = match content.metadata.get("general.architecture").map(|v| v.to_string()) {
        Some(Ok(name)) => name.clone(),
        _ => return Err(unreadable("its metadata names no general.architecture".into())),
    };
    if architecture != "qwen2" {
        return Err(Error::UnsupportedArchitecture { path: path.to_owned(), architecture });
    }
    // The header only lists tensors; a truncated download still has a valid header, so check that
    // the last tensor ends inside the file before spending seconds loading the rest.
    let data_end = content
        .tensor_infos
        .values()
        .map(|t| t.offset + stored_bytes(t))
        .max()
        .map(|end| end + content.tensor_data_offset);
    if let Some(data_end) = data_end.filter(|&end| end > file_len) {
        return Err(unreadable(format!(
            "it is truncated: the tensors need {data_end} bytes but the file has {file_len}"
        )));
    }

    Ok((content, reader))
}

/// The bytes of one tensor in the file (and in memory while it stays quantized).
fn stored_bytes(tensor: &gguf_file::TensorInfo) -> u64 {
    (tensor.shape.elem_count() / tensor.ggml_dtype.block_size() * tensor.ggml_dtype.type_size()) as u64
}

/// The memory a load takes at its peak, for [`memory::ensure_room`]: every tensor as stored, the
/// f32 copy of the token embedding that qwen2.rs looks rows up in, and a margin for what loading
/// allocates on the way (MARGIN_PERCENT; extension/src/tests/faults.rs loads the model under an
/// address-space limit of exactly this, so too small a margin fails a test, not a server).
pub(crate) fn bytes_to_load(content: &gguf_file::Content) -> u64 {
    const MARGIN_PERCENT: u64 = 25;
    let stored: u64 = content.tensor_infos.values().map(stored_bytes).sum();
    let embedding_f32 = content.tensor_infos.get("token_embd.weight").map_or(0, |t| t.shape.elem_count() as u64 * 4);
    (stored + embedding_f32) * (100 + MARGIN_PERCENT) / 100
}

impl Model {
    pub(crate) fn load(path: &Path, device: &Device) -> Result<Self> {
        let (content, mut reader) = read_header(path)?;
        if device.is_cpu() {
            // On a GPU the weights go to device memory, whose exhaustion candle returns as an error.
            memory::ensure_room(path, bytes_to_load(&content))?;
        }
        let tokenizer = ChatTokenizer::from_gguf(&content)?;
        let qwen2 = Qwen2::from_gguf(&content, &mut reader, device).map_err(|e| Error::ModelUnreadable {
            path: path.to_owned(),
            reason: format!("its weights could not be loaded ({e})"),
        })?;
        Ok(Self { qwen2, tokenizer })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A file that is removed when the test ends, however it ends.
    struct TempFile(std::path::PathBuf);

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn temp_file(name: &str, bytes: &[u8]) -> TempFile {
        let path = std::env::temp_dir().join(format!("nl2sql-engine-test-{}-{name}", std::process::id()));
        File::create(&path).unwrap().write_all(bytes).unwrap();
        TempFile(path)
    }

    fn load_error(path: &Path) -> String {
        match Model::load(path, &Device::Cpu) {
            Ok(_) => panic!("{} loaded, but it should not", path.display()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn missing_file_names_the_fetch_script() {
        let err = load_error(Path::new("/nonexistent/model.gguf"));
        assert!(err.contains("does not exist") && err.contains("scripts/fetch-model"), "{err}");
    }

    #[test]
    fn non_gguf_file_is_named_as_such() {
        let path = temp_file("not.gguf", b"<html>404 not found</html>");
        let err = load_error(&path.0);
        assert!(err.contains("not a GGUF file"), "{err}");
    }

    #[test]
    fn empty_file_is_not_gguf() {
        let path = temp_file("empty.gguf", b"");
        assert!(load_error(&path.0).contains("not a GGUF file"));
    }

    /// A GGUF header with one string key and no tensors.
    fn gguf_with_architecture(architecture: &str) -> Vec<u8> {
        let mut bytes = b"GGUF".to_vec();
        bytes.extend(3u32.to_le_bytes()); // version
        bytes.extend(0u64.to_le_bytes()); // tensors
        bytes.extend(1u64.to_le_bytes()); // metadata entries
        let key = "general.architecture";
        bytes.extend((key.len() as u64).to_le_bytes());
        bytes.extend(key.as_bytes());
        bytes.extend(8u32.to_le_bytes()); // string
        bytes.extend((architecture.len() as u64).to_le_bytes());
        bytes.extend(architecture.as_bytes());
        bytes
    }

    #[test]
    fn other_architectures_are_named() {
        let path = temp_file("llama.gguf", &gguf_with_architecture("llama"));
        let err = load_error(&path.0);
        assert!(err.contains("architecture 'llama'") && err.contains("only Qwen2"), "{err}");
    }

    #[test]
    fn damaged_header_is_reported() {
        let path = temp_file("header.gguf", b"GGUF\x03\x00\x00\x00\xff");
        let err = load_error(&path.0);
        assert!(err.contains("damaged or truncated"), "{err}");
    }
}
