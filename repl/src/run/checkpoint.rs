//! `sluice run --checkpoint-dir DIR`: where a run stopped, kept so that it can go on.
//!
//! `DIR/checkpoint` holds, in one checkpoint file (see `sluice_engine::checkpoint`): the
//! script and the `--input` list it belongs to, how many input rows were fed, whether input
//! ended, the length of every file written to the output directory, and the script's state.
//! A run writes it after flushing and syncing its output files, under a temporary name that
//! is synced and then renamed over the old one (and the directory synced), so the file is
//! always one whole checkpoint. A run that goes on truncates each output file to its recorded
//! length, which drops whatever a run killed after the checkpoint had written: every result
//! is written exactly once.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use sluice_engine::checkpoint;
use sluice_engine::state::StateWriter;
use sluice_sql::Script;

use crate::CliError;

const FILE: &str = "checkpoint";

/// What a run is, to tell whether a checkpoint belongs to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunIdentity {
    pub script: String,
    /// `STREAM=PATH` per `--input`, in order.
    pub inputs: Vec<String>,
}

/// Where a run stands, besides its script's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// Input rows fed, counted in feed order.
    pub rows_fed: u64,
    /// Whether all input was fed and ended.
    pub finished: bool,
    /// Each written file's name in the output directory, and its length.
    pub files: Vec<(String, u64)>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |source| CliError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Reads `DIR/checkpoint` into `script`, if there is one; refuses one of another run.
pub fn load(
    directory: &Path,
    identity: &RunIdentity,
    script: &mut Script,
) -> Result<Option<Position>, CliError> {
    let path = directory.join(FILE);
    let file = match fs::read(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_error(&path)(source)),
    };
    let name = path.display().to_string();
    let mut state = checkpoint::decode(&name, &file)?.reader();
    state.label("run")?;
    let script_text = state.string()?;
    let inputs = (0..state.usize()?)
        .map(|_| state.string())
        .collect::<Result<Vec<_>, _>>()?;
    if script_text != identity.script || inputs != identity.inputs {
        return Err(CliError::Usage(format!(
            "{name} is the checkpoint of another run (its inputs were {}); use another --checkpoint-dir or remove it",
            inputs.join(" ")
        )));
    }
    let rows_fed = state.u64()?;
    let finished = state.bool()?;
    let files = (0..state.usize()?)
        .map(|_| Ok((state.string()?, state.u64()?)))
        .collect::<Result<Vec<_>, CliError>>()?;
    script.load_state(&mut state)?;
    Ok(Some(Position {
        rows_fed,
        finished,
        files,
    }))
}

/// Writes `DIR/checkpoint` for `script` at `position`; the output files must be synced.
pub fn save(
    directory: &Path,
    identity: &RunIdentity,
    position: &Position,
    script: &mut Script,
) -> Result<(), CliError> {
    let mut state = StateWriter::new();
    state.label("run");
    state.string(&identity.script);
    state.usize(identity.inputs.len());
    for input in &identity.inputs {
        state.string(input);
    }
    state.u64(position.rows_fed);
    state.bool(position.finished);
    state.usize(position.files.len());
    for (name, length) in &position.files {
        state.string(name);
        state.u64(*length);
    }
    script.save_state(&mut state)?;
    let bytes = checkpoint::encode(&state.into_bytes());
    fs::create_dir_all(directory).map_err(io_error(directory))?;
    let temporary = directory.join(format!("{FILE}.tmp"));
    let mut file = File::create(&temporary).map_err(io_error(&temporary))?;
    file.write_all(&bytes).map_err(io_error(&temporary))?;
    file.sync_all().map_err(io_error(&temporary))?;
    let path = directory.join(FILE);
    fs::rename(&temporary, &path).map_err(io_error(&path))?;
    File::open(directory)
        .and_then(|directory| directory.sync_all())
        .map_err(io_error(directory))?;
    Ok(())
}

/// Opens output file `path` to go on writing it: cut to `length` when the checkpoint
/// recorded it, otherwise (a file the run had not written yet) `None`.
pub fn reopen(path: &PathBuf, length: Option<u64>) -> Result<Option<File>, CliError> {
    let Some(length) = length else {
        return Ok(None);
    };
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error(path))?;
    let actual = file.metadata().map_err(io_error(path))?.len();
    if actual < length {
        return Err(CliError::Usage(format!(
            "{} is shorter ({actual} bytes) than when the checkpoint was taken ({length}): it was changed since",
            path.display()
        )));
    }
    file.set_len(length).map_err(io_error(path))?;
    let mut file = file;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0)).map_err(io_error(path))?;
    Ok(Some(file))
}
