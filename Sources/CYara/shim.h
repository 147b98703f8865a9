#include <yara.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* YR_RULE and YR_META hold their strings in unions with arena references, and libyara walks
   metas and tags with macros: these accessors give Swift plain functions instead. */

static inline const char *xw_yara_rule_identifier(const YR_RULE *rule) { return rule->identifier; }
static inline const char *xw_yara_rule_namespace(const YR_RULE *rule) { return rule->ns->name; }
/* Tags are NUL-separated and end with an empty string. */
static inline const char *xw_yara_rule_tags(const YR_RULE *rule) { return rule->tags; }
static inline const YR_META *xw_yara_rule_metas(const YR_RULE *rule) { return rule->metas; }
static inline int xw_yara_meta_is_last(const YR_META *meta) { return (meta->flags & META_FLAGS_LAST_IN_RULE) != 0; }
static inline const char *xw_yara_meta_identifier(const YR_META *meta) { return meta->identifier; }
static inline const char *xw_yara_meta_string(const YR_META *meta) { return meta->string; }
static inline int xw_yara_rule_count(YR_RULES *rules) {
    int count = 0;
    YR_RULE *rule;
    yr_rules_foreach(rules, rule) { count++; }
    return count;
}

/* Rules saved and loaded back, through memory. Compiled rules keep the compiler's arena, a
   buffer of about 1 MB per section however little the rules fill (8 MB resident for two small
   rules); loaded rules sit in buffers of their own size. */
typedef struct {
    unsigned char *bytes;
    size_t length, capacity, offset;
} xw_yara_buffer;

static size_t xw_yara_buffer_write(const void *data, size_t size, size_t count, void *context) {
    xw_yara_buffer *buffer = context;
    size_t bytes = size * count;
    if (buffer->length + bytes > buffer->capacity) {
        size_t capacity = (buffer->length + bytes) * 2;
        unsigned char *grown = realloc(buffer->bytes, capacity);
        if (grown == NULL) return 0;
        buffer->bytes = grown;
        buffer->capacity = capacity;
    }
    memcpy(buffer->bytes + buffer->length, data, bytes);
    buffer->length += bytes;
    return count;
}

static size_t xw_yara_buffer_read(void *data, size_t size, size_t count, void *context) {
    xw_yara_buffer *buffer = context;
    size_t bytes = size * count;
    if (bytes > buffer->length - buffer->offset) return 0;
    memcpy(data, buffer->bytes + buffer->offset, bytes);
    buffer->offset += bytes;
    return count;
}

static inline int xw_yara_rules_compacted(YR_RULES *rules, YR_RULES **compacted) {
    xw_yara_buffer buffer = {0};
    YR_STREAM stream = {.user_data = &buffer, .read = xw_yara_buffer_read, .write = xw_yara_buffer_write};
    int status = yr_rules_save_stream(rules, &stream);
    if (status == ERROR_SUCCESS) status = yr_rules_load_stream(&stream, compacted);
    free(buffer.bytes);
    return status;
}

/* A file scanned a window at a time, so that what is resident stays near one window however
   large the file. The file is mapped once; libyara gets it as windows that overlap (a string
   shorter than the overlap that crosses a window's end lies whole in the next one), and the
   pages of each window are dropped once it is scanned. A dropped page of a private read-only
   mapping reads back from the page cache when touched again (a condition's uint32(), a module
   that keeps a pointer into the first window), so nothing dangles; libyara catches the SIGBUS
   of a file truncated under the scan and fails it. Modules parse the windows that begin with
   their header: the first, for a file, as it was mapped whole. */
typedef struct {
    const unsigned char *data;
    uint64_t size, window, step;
    YR_MEMORY_BLOCK block;
} xw_yara_windows;

static const uint8_t *xw_yara_window_data(YR_MEMORY_BLOCK *block) {
    const xw_yara_windows *windows = block->context;
    return windows->data + block->base;
}

static YR_MEMORY_BLOCK *xw_yara_window_at(xw_yara_windows *windows, uint64_t base) {
    windows->block.base = base;
    windows->block.size = windows->size - base < windows->window ? windows->size - base : windows->window;
    windows->block.context = windows;
    windows->block.fetch_data = xw_yara_window_data;
    return &windows->block;
}

static YR_MEMORY_BLOCK *xw_yara_first_window(YR_MEMORY_BLOCK_ITERATOR *iterator) {
    return xw_yara_window_at(iterator->context, 0);
}

static YR_MEMORY_BLOCK *xw_yara_next_window(YR_MEMORY_BLOCK_ITERATOR *iterator) {
    xw_yara_windows *windows = iterator->context;
    uint64_t base = windows->block.base;
    madvise((void *)(windows->data + base), windows->block.size, MADV_DONTNEED);
    if (base + windows->block.size >= windows->size) return NULL;
    return xw_yara_window_at(windows, base + windows->step);
}

static uint64_t xw_yara_windows_size(YR_MEMORY_BLOCK_ITERATOR *iterator) {
    return ((const xw_yara_windows *)iterator->context)->size;
}

/* `window` and `overlap` are multiples of the page size, the overlap smaller than the window. */
static inline int xw_yara_scan_windows(YR_RULES *rules, int fd, uint64_t size, uint64_t window, uint64_t overlap,
                                       int flags, YR_CALLBACK_FUNC callback, void *user_data, int timeout) {
    if (size == 0) return yr_rules_scan_mem(rules, (const uint8_t *)"", 0, flags, callback, user_data, timeout);
    void *data = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (data == MAP_FAILED) return ERROR_COULD_NOT_MAP_FILE;
    xw_yara_windows windows = {.data = data, .size = size, .window = window, .step = window - overlap};
    YR_MEMORY_BLOCK_ITERATOR iterator = {
        .context = &windows,
        .first = xw_yara_first_window,
        .next = xw_yara_next_window,
        .file_size = xw_yara_windows_size,
        .last_error = ERROR_SUCCESS,
    };
    int status = yr_rules_scan_mem_blocks(rules, &iterator, flags, callback, user_data, timeout);
    munmap(data, size);
    return status;
}
