//! Group keys as dense codes: each key column gives every distinct value a
//! code in the order it first appears, and each distinct combination of
//! codes is a group.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayData, ArrayRef, AsArray, DictionaryArray, GenericStringArray, OffsetSizeTrait,
    StringViewArray, UInt32Array, downcast_dictionary_array, make_array, new_empty_array,
};
use arrow::buffer::NullBuffer;
use arrow::compute::{CastOptions, cast_with_options, concat, take};
use arrow::datatypes::{ArrowDictionaryKeyType, ArrowNativeType, DataType};
use datafusion::common::{DataFusionError, Result};

type FastMap<K> = HashMap<K, u32, foldhash::fast::FixedState>;

/// A slot of the per-batch group cache that no group has taken yet.
const NO_GROUP: u32 = u32::MAX;

/// The most slots the per-batch group cache may have: a batch whose key
/// codes span more combinations looks each row up in the group table.
const CACHE_SLOTS: usize = 4096;

/// The most key columns: each column's code takes 32 bits of a group's
/// 128-bit key.
pub const MAX_KEY_COLUMNS: usize = 4;

/// How the values of a key column are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A dictionary of text values: each dictionary value is coded once per
    /// dictionary, and each row through its key.
    Dictionary,
    /// Text as string views.
    View,
    /// Text with 32-bit offsets.
    Text,
    /// Text with 64-bit offsets.
    LargeText,
    /// Integers, dates and timestamps: their bits are their identity.
    Fixed,
    Boolean,
}

impl KeyKind {
    /// How a column of `data_type` is coded, if it can be.
    pub fn of(data_type: &DataType) -> Option<Self> {
        use DataType::*;
        Some(match data_type {
            Dictionary(key, value)
                if key.is_dictionary_key_type()
                    && matches!(value.as_ref(), Utf8 | LargeUtf8 | Utf8View) =>
            {
                Self::Dictionary
            }
            Utf8View => Self::View,
            Utf8 => Self::Text,
            LargeUtf8 => Self::LargeText,
            Int8
            | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Date32
            | Date64
            | Time32(_)
            | Time64(_)
            | Timestamp(_, _)
            | Duration(_) => Self::Fixed,
            Boolean => Self::Boolean,
            _ => return None,
        })
    }
}

/// The group keys of one partial aggregation.
#[derive(Debug)]
pub struct GroupKeys {
    columns: Vec<KeyColumn>,
    /// Packed codes (32 bits per column) to group. A code is not a group of
    /// its own even with one column: a dictionary's values all get codes,
    /// and only those some row refers to make groups.
    groups: FastMap<u128>,
    /// Each group's codes, `columns.len()` per group.
    group_codes: Vec<u32>,
    /// The batch's group of each combination of codes within the batch's
    /// code ranges, filled as rows find them.
    cache: Vec<u32>,
    /// Each row's slot in `cache`, when several columns vary in the batch.
    slots: Vec<u32>,
}

impl GroupKeys {
    /// Keys of the given column types; each must have a [`KeyKind`].
    pub fn new(types: &[DataType]) -> Result<Self> {
        if types.is_empty() || types.len() > MAX_KEY_COLUMNS {
            return Err(DataFusionError::Internal(format!(
                "dictionary aggregation groups by 1 to {MAX_KEY_COLUMNS} columns, not {}",
                types.len()
            )));
        }
        let columns = types
            .iter()
            .map(|data_type| {
                KeyKind::of(data_type)
                    .map(|kind| KeyColumn::new(data_type.clone(), kind))
                    .ok_or_else(|| {
                        DataFusionError::Internal(format!(
                            "dictionary aggregation cannot group by a {data_type} column"
                        ))
                    })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            columns,
            groups: FastMap::default(),
            group_codes: Vec::new(),
            cache: Vec::new(),
            slots: Vec::new(),
        })
    }

    /// The number of groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Sets `groups` to the group of each row of `keys` (one array per key
    /// column), making new groups as needed.
    pub fn intern(&mut self, keys: &[ArrayRef], groups: &mut Vec<usize>) -> Result<()> {
        if keys.len() != self.columns.len() {
            return Err(DataFusionError::Internal(format!(
                "{} key arrays for {} key columns",
                keys.len(),
                self.columns.len()
            )));
        }
        let rows = keys.first().map_or(0, |array| array.len());
        groups.clear();
        if rows == 0 {
            return Ok(());
        }
        for (column, array) in self.columns.iter_mut().zip(keys) {
            if array.len() != rows {
                return Err(DataFusionError::Internal(
                    "key arrays of different lengths".into(),
                ));
            }
            column.code(array)?;
        }
        groups.reserve(rows);
        // The codes of the columns with one value in the batch, in place;
        // and the others, whose combinations, if few, index a cache of their
        // groups: a batch of one file has one value of a partition column
        // and a handful of a dictionary column.
        let mut constant = 0u128;
        let mut varying = Vec::with_capacity(self.columns.len());
        for (j, column) in self.columns.iter().enumerate() {
            match column.batch {
                Batch::One(code) => constant |= (code as u128) << (32 * j),
                Batch::Rows { low, high } => varying.push((j, low, high)),
            }
        }
        let span = varying.iter().fold(1usize, |span, &(_, low, high)| {
            span.saturating_mul((high - low) as usize + 1)
        });
        match varying.as_slice() {
            [] => {
                let group = self.group_of_key(constant);
                groups.resize(rows, group as usize);
            }
            _ if span > CACHE_SLOTS => {
                let mut last = (u128::MAX, 0u32);
                for row in 0..rows {
                    let key = self.packed(row);
                    if key != last.0 {
                        last = (key, self.group_of_key(key));
                    }
                    groups.push(last.1 as usize);
                }
            }
            &[(j, low, _)] => {
                let codes = std::mem::take(&mut self.columns[j].codes);
                self.cache.clear();
                self.cache.resize(span, NO_GROUP);
                for &code in &codes {
                    let slot = (code - low) as usize;
                    let mut group = self.cache[slot];
                    if group == NO_GROUP {
                        group = self.group_of_key(constant | (code as u128) << (32 * j));
                        self.cache[slot] = group;
                    }
                    groups.push(group as usize);
                }
                self.columns[j].codes = codes;
            }
            _ => {
                self.slots.clear();
                self.slots.resize(rows, 0);
                let mut stride = 1;
                for &(j, low, high) in &varying {
                    for (slot, &code) in self.slots.iter_mut().zip(&self.columns[j].codes) {
                        *slot += (code - low) * stride;
                    }
                    stride *= high - low + 1;
                }
                self.cache.clear();
                self.cache.resize(span, NO_GROUP);
                for row in 0..rows {
                    let slot = self.slots[row] as usize;
                    let mut group = self.cache[slot];
                    if group == NO_GROUP {
                        group = self.group_of_key(self.packed(row));
                        self.cache[slot] = group;
                    }
                    groups.push(group as usize);
                }
            }
        }
        Ok(())
    }

    /// The packed codes of `row` of the batch.
    fn packed(&self, row: usize) -> u128 {
        self.columns.iter().enumerate().fold(0, |key, (j, column)| {
            let code = match column.batch {
                Batch::One(code) => code,
                Batch::Rows { .. } => column.codes[row],
            };
            key | (code as u128) << (32 * j)
        })
    }

    fn group_of_key(&mut self, key: u128) -> u32 {
        let next = self.groups.len() as u32;
        let group = *self.groups.entry(key).or_insert(next);
        if group == next {
            self.group_codes
                .extend((0..self.columns.len()).map(|j| (key >> (32 * j)) as u32));
        }
        group
    }

    /// Bytes held.
    pub fn size(&self) -> usize {
        let entry = size_of::<(u128, u32)>() + 1;
        self.columns.iter().map(KeyColumn::size).sum::<usize>()
            + self.groups.capacity() * entry
            + (self.group_codes.capacity() + self.cache.capacity() + self.slots.capacity()) * 4
    }

    /// The key columns of every group, in group order; then starts anew.
    pub fn emit(&mut self) -> Result<Vec<ArrayRef>> {
        let width = self.columns.len();
        let arrays = self
            .columns
            .iter()
            .enumerate()
            .map(|(j, column)| {
                let codes = UInt32Array::from_iter_values(
                    self.group_codes.iter().skip(j).step_by(width).copied(),
                );
                column.values_of(&codes)
            })
            .collect::<Result<Vec<_>>>()?;
        for column in &mut self.columns {
            *column = KeyColumn::new(column.data_type.clone(), column.kind);
        }
        self.groups = FastMap::default();
        self.group_codes = Vec::new();
        Ok(arrays)
    }
}

/// A key column's codes in a batch.
#[derive(Debug, Clone, Copy)]
enum Batch {
    /// Every row has this code.
    One(u32),
    /// Each row's code is in `KeyColumn::codes`, between `low` and `high`.
    Rows { low: u32, high: u32 },
}

/// One key column: its values' codes, and its distinct values by code.
#[derive(Debug)]
struct KeyColumn {
    data_type: DataType,
    kind: KeyKind,
    /// Values that fit in 128 bits: text of up to 12 bytes laid out as an
    /// Arrow string view (length, then the bytes, zero-padded), fixed-width
    /// values by their bits.
    words: FastMap<u128>,
    /// Longer text.
    long: FastMap<Box<[u8]>>,
    null: Option<u32>,
    /// The number of codes given.
    len: u32,
    /// The distinct values in code order (a dictionary's value type for a
    /// dictionary column), in chunks taken from the batches.
    values: Vec<ArrayRef>,
    /// Where in the array being coded each value new in it is (`None` for
    /// the null), not yet copied into `values`.
    fresh: Vec<Option<u32>>,
    /// The codes of the dictionary values seen last, for the next batch
    /// that shares them (as batches of one column chunk may).
    last_dictionary: Option<(ArrayRef, Vec<u32>)>,
    /// The batch's codes.
    batch: Batch,
    /// The code of each row of the batch, unless it has one value.
    codes: Vec<u32>,
}

/// The masks that keep the length and the bytes of an inline string view.
const INLINE_MASKS: [u128; 13] = {
    let mut masks = [0u128; 13];
    let mut len = 0;
    while len <= 12 {
        masks[len] = if len == 12 {
            u128::MAX
        } else {
            (1u128 << (32 + 8 * len)) - 1
        };
        len += 1;
    }
    masks
};

/// Whether every row of `array` is the same string view, none null.
fn has_one_view(array: &dyn Array) -> bool {
    let Some(views) = array.as_string_view_opt().map(|array| array.views()) else {
        return false;
    };
    array.null_count() == 0
        && views
            .first()
            .is_some_and(|first| views.iter().all(|view| view == first))
}

/// The codes a batch's rows may have: those of a dictionary's values, and
/// the null's.
fn span_of(codes: &[u32], null: Option<u32>) -> Batch {
    let (low, high) = codes
        .iter()
        .chain(&null)
        .fold((u32::MAX, 0), |(low, high), &code| {
            (low.min(code), high.max(code))
        });
    Batch::Rows { low, high }
}

fn broken_dictionary(values: usize) -> DataFusionError {
    DataFusionError::Internal(format!("a dictionary key past its {values} values"))
}

/// Text of up to 12 bytes as the string view Arrow would make of it.
fn inline_word(bytes: &[u8]) -> u128 {
    let mut view = [0u8; 16];
    view[..4].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
    view[4..4 + bytes.len()].copy_from_slice(bytes);
    u128::from_le_bytes(view)
}

impl KeyColumn {
    fn new(data_type: DataType, kind: KeyKind) -> Self {
        Self {
            data_type,
            kind,
            words: FastMap::default(),
            long: FastMap::default(),
            null: None,
            len: 0,
            values: Vec::new(),
            fresh: Vec::new(),
            last_dictionary: None,
            batch: Batch::One(0),
            codes: Vec::new(),
        }
    }

    fn size(&self) -> usize {
        let word_entry = size_of::<(u128, u32)>() + 1;
        let long_entry = size_of::<(Box<[u8]>, u32)>() + 1;
        let long_bytes: usize = self.long.keys().map(|bytes| bytes.len()).sum();
        let dictionary = self
            .last_dictionary
            .as_ref()
            .map_or(0, |(_, codes)| codes.capacity() * 4);
        self.words.capacity() * word_entry
            + self.long.capacity() * long_entry
            + long_bytes
            + self
                .values
                .iter()
                .map(|array| array.get_array_memory_size())
                .sum::<usize>()
            + self.codes.capacity() * 4
            + dictionary
    }

    fn new_code(&mut self, index: Option<usize>) -> u32 {
        let code = self.len;
        self.len += 1;
        self.fresh.push(index.map(|i| i as u32));
        code
    }

    fn null_code(&mut self) -> u32 {
        match self.null {
            Some(code) => code,
            None => {
                let code = self.new_code(None);
                self.null = Some(code);
                code
            }
        }
    }

    fn word_code(&mut self, word: u128, index: usize) -> u32 {
        match self.words.get(&word) {
            Some(&code) => code,
            None => {
                let code = self.new_code(Some(index));
                self.words.insert(word, code);
                code
            }
        }
    }

    fn text_code(&mut self, bytes: &[u8], index: usize) -> u32 {
        if bytes.len() <= 12 {
            return self.word_code(inline_word(bytes), index);
        }
        match self.long.get(bytes) {
            Some(&code) => code,
            None => {
                let code = self.new_code(Some(index));
                self.long.insert(bytes.into(), code);
                code
            }
        }
    }

    /// Codes the rows of `array`: sets `batch`, and `codes` unless every
    /// row has one value.
    fn code(&mut self, array: &ArrayRef) -> Result<()> {
        let mut codes = std::mem::take(&mut self.codes);
        codes.clear();
        let batch = if self.kind == KeyKind::Dictionary {
            downcast_dictionary_array!(
                array => self.code_dictionary(array, &mut codes),
                other => Err(DataFusionError::Internal(format!(
                    "a {other} array in a dictionary key column"
                )))
            )
        } else if has_one_view(array.as_ref()) {
            // A partition column: one value for the whole file.
            self.code_values(&array.slice(0, 1), &mut codes)
                .map(|()| Batch::One(codes[0]))
        } else {
            self.code_values(array.as_ref(), &mut codes)
                .map(|()| span_of(&codes, None))
        };
        self.codes = codes;
        self.batch = batch?;
        Ok(())
    }

    fn code_dictionary<K: ArrowDictionaryKeyType>(
        &mut self,
        array: &DictionaryArray<K>,
        codes: &mut Vec<u32>,
    ) -> Result<Batch> {
        let values = array.values();
        let value_codes = match self.last_dictionary.take() {
            Some((last, value_codes)) if Arc::ptr_eq(&last, values) => value_codes,
            _ => {
                let mut value_codes = Vec::with_capacity(values.len());
                self.code_values(values.as_ref(), &mut value_codes)?;
                value_codes
            }
        };
        let keys = array.keys();
        // A valid dictionary's keys are below its length: a key past it is
        // a broken array, and an error rather than a panic.
        let count = value_codes.len();
        let valid = |key: &K::Native| key.as_usize() < count;
        let batch = if keys.null_count() == 0 {
            if !keys.values().iter().all(valid) {
                return Err(broken_dictionary(count));
            }
            let first = keys.values().first().copied();
            match first.filter(|&first| keys.values().iter().all(|&key| key == first)) {
                Some(first) => Batch::One(value_codes[first.as_usize()]),
                None => {
                    codes.extend(keys.values().iter().map(|key| value_codes[key.as_usize()]));
                    span_of(&value_codes, None)
                }
            }
        } else {
            let null = self.null_code();
            for (row, key) in keys.values().iter().enumerate() {
                if keys.is_null(row) {
                    codes.push(null);
                } else if valid(key) {
                    codes.push(value_codes[key.as_usize()]);
                } else {
                    return Err(broken_dictionary(count));
                }
            }
            // The null's value is taken from the dictionary's values: any
            // array of the values' type gives a null.
            self.keep_fresh(values.as_ref())?;
            span_of(&value_codes, Some(null))
        };
        self.last_dictionary = Some((Arc::clone(values), value_codes));
        Ok(batch)
    }

    /// Appends the code of each value of `array`, an array of the column's
    /// type (or of a dictionary column's value type).
    fn code_values(&mut self, array: &dyn Array, codes: &mut Vec<u32>) -> Result<()> {
        codes.reserve(array.len());
        match array.data_type() {
            DataType::Utf8View => self.code_views(array.as_string_view(), codes),
            DataType::Utf8 => self.code_text(array.as_string::<i32>(), codes),
            DataType::LargeUtf8 => self.code_text(array.as_string::<i64>(), codes),
            DataType::Boolean => {
                let booleans = array.as_boolean();
                for row in 0..booleans.len() {
                    let code = if booleans.is_null(row) {
                        self.null_code()
                    } else {
                        self.word_code(booleans.value(row) as u128, row)
                    };
                    codes.push(code);
                }
            }
            data_type => {
                let data = array.to_data();
                match data_type.primitive_width() {
                    Some(1) => self.code_fixed(data.buffer::<u8>(0), data.nulls(), codes),
                    Some(2) => self.code_fixed(data.buffer::<u16>(0), data.nulls(), codes),
                    Some(4) => self.code_fixed(data.buffer::<u32>(0), data.nulls(), codes),
                    Some(8) => self.code_fixed(data.buffer::<u64>(0), data.nulls(), codes),
                    _ => {
                        return Err(DataFusionError::Internal(format!(
                            "dictionary aggregation cannot group by a {data_type} column"
                        )));
                    }
                }
            }
        }
        self.keep_fresh(array)
    }

    fn code_views(&mut self, array: &StringViewArray, codes: &mut Vec<u32>) {
        let mut last = (u128::MAX, 0u32);
        for (row, &view) in array.views().iter().enumerate() {
            if array.is_null(row) {
                codes.push(self.null_code());
                continue;
            }
            let len = view as u32 as usize;
            let code = match INLINE_MASKS.get(len) {
                Some(mask) => {
                    let word = view & mask;
                    if word != last.0 {
                        last = (word, self.word_code(word, row));
                    }
                    last.1
                }
                None => self.text_code(array.value(row).as_bytes(), row),
            };
            codes.push(code);
        }
    }

    fn code_text<O: OffsetSizeTrait>(
        &mut self,
        array: &GenericStringArray<O>,
        codes: &mut Vec<u32>,
    ) {
        for row in 0..array.len() {
            let code = if array.is_null(row) {
                self.null_code()
            } else {
                self.text_code(array.value(row).as_bytes(), row)
            };
            codes.push(code);
        }
    }

    fn code_fixed<T: Copy + Into<u128>>(
        &mut self,
        values: &[T],
        nulls: Option<&NullBuffer>,
        codes: &mut Vec<u32>,
    ) {
        let mut last = (u128::MAX, 0u32);
        for (row, &value) in values.iter().enumerate() {
            if nulls.is_some_and(|nulls| nulls.is_null(row)) {
                codes.push(self.null_code());
                continue;
            }
            let word = value.into();
            if word != last.0 {
                last = (word, self.word_code(word, row));
            }
            codes.push(last.1);
        }
    }

    /// Copies the values that got their code from `source` into `values`.
    fn keep_fresh(&mut self, source: &dyn Array) -> Result<()> {
        if self.fresh.is_empty() {
            return Ok(());
        }
        let indices = UInt32Array::from(std::mem::take(&mut self.fresh));
        let taken = take(source, &indices, None)?;
        // A taken view still points into the batch's buffers: keep only
        // the bytes of its own values.
        let kept = match taken.data_type() {
            DataType::Utf8View => Arc::new(taken.as_string_view().gc()) as ArrayRef,
            _ => taken,
        };
        self.values.push(kept);
        Ok(())
    }

    /// The values of `codes`, as an array of the column's type.
    fn values_of(&self, codes: &UInt32Array) -> Result<ArrayRef> {
        let chunks: Vec<&dyn Array> = self.values.iter().map(|array| array.as_ref()).collect();
        if chunks.is_empty() {
            return Ok(new_empty_array(&self.data_type));
        }
        let distinct = concat(&chunks)?;
        let DataType::Dictionary(key_type, _) = &self.data_type else {
            return Ok(take(&distinct, codes, None)?);
        };
        // The distinct values become the dictionary and the codes its keys.
        // A key type too narrow for them is an error, not a wrapped key.
        let keys = cast_with_options(
            codes,
            key_type,
            &CastOptions {
                safe: false,
                ..Default::default()
            },
        )?;
        let nulls = self
            .null
            .map(|null| NullBuffer::from_iter(codes.values().iter().map(|&code| code != null)));
        let data = ArrayData::builder(self.data_type.clone())
            .len(codes.len())
            .add_buffer(keys.to_data().buffers()[0].clone())
            .nulls(nulls)
            .add_child_data(distinct.to_data())
            .build()?;
        Ok(make_array(data))
    }
}
