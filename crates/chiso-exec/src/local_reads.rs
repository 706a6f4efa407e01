//! The local file system as DataFusion's scans read it: byte ranges read
//! in place, on the thread that asks for them.
//!
//! `object_store`'s `LocalFileSystem` hands every read to tokio's blocking
//! pool and waits for it, so that a slow disk never stalls a worker thread.
//! A store's files are read a row group at a time, a few pages of a column
//! each, and they sit in the page cache: the handover (a thread woken and
//! put back to sleep per row group and column) cost more than the copy it
//! waited for (benches/README.md, "Why these settings"). Here the ranges
//! are read with
//! `pread` where they are asked for, as DuckDB reads its files; everything
//! else (listing, writing, whole-file reads) is `LocalFileSystem`'s.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// `LocalFileSystem`, with ranges read in place.
#[derive(Debug, Default)]
pub struct LocalReads {
    inner: LocalFileSystem,
}

impl LocalReads {
    fn read_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let path = self.inner.path_to_filesystem(location)?;
        let error = |source: std::io::Error| match source.kind() {
            std::io::ErrorKind::NotFound => object_store::Error::NotFound {
                path: path.to_string_lossy().into_owned(),
                source: Box::new(source),
            },
            _ => object_store::Error::Generic {
                store: "LocalFileSystem",
                source: format!("reading {}: {source}", path.display()).into(),
            },
        };
        let file = File::open(&path).map_err(error)?;
        ranges
            .iter()
            .map(|range| {
                let length = usize::try_from(range.end.saturating_sub(range.start))
                    .map_err(|e| error(std::io::Error::other(e)))?;
                let mut bytes = vec![0; length];
                file.read_exact_at(&mut bytes, range.start).map_err(error)?;
                Ok(Bytes::from(bytes))
            })
            .collect()
    }
}

impl std::fmt::Display for LocalReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalReads({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for LocalReads {
    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.read_ranges(location, ranges)
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        options: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, options).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        options: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of `len` bytes counting 0, 1, … 255, 0, … under the system's
    /// temporary folder, removed on drop.
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(name: &str, len: usize) -> Self {
            let path = std::env::temp_dir()
                .join(format!("chiso-local-reads-{}-{name}", std::process::id()));
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            std::fs::write(&path, bytes).expect("a scratch file");
            Self(path)
        }

        fn location(&self) -> Path {
            Path::from_filesystem_path(&self.0).expect("an absolute path")
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn read(location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        futures::executor::block_on(LocalReads::default().get_ranges(location, ranges))
    }

    #[test]
    fn ranges_are_read_as_asked_in_any_order() {
        let file = Scratch::new("ranges", 70_000);
        let ranges = [65_000..70_000, 3..9, 9..9, 0..1, 300..65_800];
        let read = read(&file.location(), &ranges).unwrap();
        let whole = std::fs::read(&file.0).unwrap();
        assert_eq!(read.len(), ranges.len());
        for (bytes, range) in read.iter().zip(&ranges) {
            assert_eq!(
                bytes.as_ref(),
                &whole[range.start as usize..range.end as usize]
            );
        }
    }

    #[test]
    fn a_range_past_the_end_is_an_error_not_a_short_read() {
        let file = Scratch::new("short", 100);
        let error = read(&file.location(), &[0..10, 90..110]).unwrap_err();
        assert!(
            matches!(error, object_store::Error::Generic { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("chiso-local-reads"), "{error}");
    }

    #[test]
    fn a_missing_file_is_not_found() {
        let file = Scratch::new("missing", 1);
        let location = file.location();
        drop(file);
        let error = read(&location, std::slice::from_ref(&(0..1))).unwrap_err();
        assert!(
            matches!(error, object_store::Error::NotFound { .. }),
            "{error:?}"
        );
    }
}
