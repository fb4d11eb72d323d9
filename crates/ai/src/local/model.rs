//! Loading the GGUF model: the process-wide llama.cpp backend, its log
//! routing, file checks that turn a missing or corrupt model into a clear
//! error, and the chat template the model ships with.

use std::{
    ffi::{c_char, c_void, CStr},
    fs::File,
    io::Read,
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard, OnceLock, PoisonError},
};

use llama_cpp_2::{
    llama_backend::LlamaBackend,
    model::{params::LlamaModelParams, LlamaChatMessage, LlamaChatTemplate, LlamaModel},
};

/// The command that downloads and verifies the model files.
pub const SETUP_COMMAND: &str = "scripts/setup-models.sh";

/// Why the local provider could not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The model file is not there.
    #[error("the local model file {} does not exist; run `{SETUP_COMMAND}` to download it", path.display())]
    ModelMissing { path: PathBuf },
    /// The model file exists but could not be read.
    #[error("the local model file {} cannot be read ({source}); check its permissions or run `{SETUP_COMMAND}`", path.display())]
    ModelUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The model file is not a loadable GGUF model.
    #[error("the local model file {} is corrupt or not a GGUF model ({reason}); run `{SETUP_COMMAND}` to fetch it again", path.display())]
    ModelInvalid { path: PathBuf, reason: String },
    /// A setting of [`crate::LocalConfig`] is out of range.
    #[error("invalid local model settings: {0}")]
    Config(String),
    /// llama.cpp itself failed (backend or context creation).
    #[error("llama.cpp failed: {0}")]
    Engine(String),
}

/// The loaded model, shared read-only by every worker.
pub(crate) struct LocalModel {
    pub(crate) model: LlamaModel,
    /// The template prompts are rendered with: the model's own, or ChatML.
    pub(crate) template: LlamaChatTemplate,
    /// The model's name for [`crate::ModelInfo`]: the file name without `.gguf`.
    pub(crate) name: String,
}

/// llama.cpp must be initialised once per process, and freeing it while a
/// model is alive is unsound, so the backend lives for the whole process.
static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

/// Serialises model loads and context creation: `llama_new_context_with_model`
/// mutates the model (llama-cpp-2 documents parallel creation as unsound).
static NATIVE_SETUP: Mutex<()> = Mutex::new(());

/// The process-wide backend, initialised on first use.
pub(crate) fn backend() -> Result<&'static LlamaBackend, LocalError> {
    BACKEND
        .get_or_init(|| {
            route_native_logs();
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LocalError::Engine(format!("could not initialise the backend: {e}")))
}

/// Held while creating anything from the model (see [`NATIVE_SETUP`]).
pub(crate) fn native_setup_lock() -> MutexGuard<'static, ()> {
    NATIVE_SETUP.lock().unwrap_or_else(PoisonError::into_inner)
}

/// llama.cpp prints every load step to stderr by default. Send it to
/// `tracing` at debug level instead: the server's own errors say what matters.
fn route_native_logs() {
    // SAFETY: `log_to_tracing` matches `ggml_log_callback` and needs no user data.
    unsafe {
        llama_cpp_sys_2::llama_log_set(Some(log_to_tracing), std::ptr::null_mut());
        llama_cpp_sys_2::ggml_log_set(Some(log_to_tracing), std::ptr::null_mut());
    }
}

unsafe extern "C" fn log_to_tracing(
    level: llama_cpp_sys_2::ggml_log_level,
    text: *const c_char,
    _user_data: *mut c_void,
) {
    if text.is_null() || !tracing::enabled!(target: "llama_cpp", tracing::Level::DEBUG) {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string valid for this call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let text = text.trim_end();
    if !text.is_empty() {
        tracing::debug!(target: "llama_cpp", level, "{text}");
    }
}

impl LocalModel {
    /// Check the file, load it and pick its chat template. Never panics on a
    /// bad file: every failure is a [`LocalError`] naming the path.
    pub(crate) fn load(path: &Path) -> Result<Self, LocalError> {
        check_gguf_header(path)?;
        let backend = backend()?;
        let model = {
            let _guard = native_setup_lock();
            LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
        }
        .map_err(|e| LocalError::ModelInvalid {
            path: path.to_owned(),
            reason: format!("llama.cpp could not load it: {e}"),
        })?;
        let template = pick_template(&model);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
            .trim_end_matches(".gguf")
            .to_owned();
        Ok(Self {
            model,
            template,
            name,
        })
    }
}

/// Fail early, with a precise reason, on a missing, empty or non-GGUF file;
/// llama.cpp's own failure is only a null pointer.
pub(crate) fn check_gguf_header(path: &Path) -> Result<(), LocalError> {
    let mut file = File::open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => LocalError::ModelMissing {
            path: path.to_owned(),
        },
        _ => LocalError::ModelUnreadable {
            path: path.to_owned(),
            source,
        },
    })?;
    let mut magic = [0u8; 4];
    let invalid = |reason: &str| LocalError::ModelInvalid {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    match file.read_exact(&mut magic) {
        Ok(()) if &magic == b"GGUF" => Ok(()),
        Ok(()) => Err(invalid("it does not start with the GGUF signature")),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(invalid("it is empty")),
        Err(source) => Err(LocalError::ModelUnreadable {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The GGUF's own template when llama.cpp can apply it, else ChatML (what
/// SmolLM2 and most small instruct models are trained on).
fn pick_template(model: &LlamaModel) -> LlamaChatTemplate {
    let chatml = || LlamaChatTemplate::new("chatml").expect("a literal without NUL");
    let Ok(template) = model.chat_template(None) else {
        tracing::warn!("the model has no chat template; using ChatML");
        return chatml();
    };
    // llama.cpp's template engine recognises common templates by their
    // markers; a probe render tells whether this one is among them.
    let probe = LlamaChatMessage::new("user".into(), "hi".into())
        .map(|message| model.apply_chat_template(&template, &[message], true));
    match probe {
        Ok(Ok(_)) => template,
        _ => {
            tracing::warn!("llama.cpp cannot apply the model's chat template; using ChatML");
            chatml()
        }
    }
}
