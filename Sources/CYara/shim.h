#include <yara.h>

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
