/*
 * The IBM Z KVM host of the emulated s390x LPAR, as seen through libvirt's client library.
 *
 * This is a piece of the LPAR emulation, not a change to the system under test. On a real
 * IBM Z LPAR, libvirt's node info says the host model is "s390x", and an s390x domain of
 * type "kvm" with <cpu mode='host-model'> runs under KVM. The emulated LPAR is an x86_64
 * machine where s390x guests run under QEMU's TCG, which libvirt calls domain type "qemu"
 * and which has no host CPU model to copy. Preloaded (LD_PRELOAD) into the adaptor's
 * process only, this library makes the emulated host present itself as the IBM Z KVM host
 * and run what the adaptor asks for under TCG:
 *
 *   - virNodeGetInfo reports the node's model as "s390x" (everything else as libvirt says);
 *   - in the domain XML given to virDomainDefineXML, virDomainDefineXMLFlags and
 *     virDomainCreateXML, and only for a domain whose <os><type arch=...> is s390x:
 *       <domain type='kvm'>  becomes  <domain type='qemu'>, and
 *       <cpu mode='host-model' ...>...</cpu> (or self-closing) becomes
 *       <cpu mode='custom'><model>qemu</model></cpu>  (QEMU's TCG s390x CPU model).
 *     Nothing else in the XML changes; any other domain's XML is passed on untouched.
 *
 * Without it libvirt refuses the adaptor's s390x domain on this host: "Emulator
 * '/usr/bin/qemu-system-s390x' does not support virt type 'kvm'", and with type qemu but
 * the host-model CPU, "CPU mode 'host-model' for s390x qemu domain on x86_64 host is not
 * supported by hypervisor".
 *
 * The real functions are found with dlsym(RTLD_NEXT): the library does not link libvirt,
 * it sits in front of the libvirt the process already uses.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>

#define HOST_MODEL "s390x"
#define TCG_CPU "<cpu mode='custom'><model>qemu</model></cpu>"

/*
 * libvirt's own definition of `name`: the next one after this library in the global scope,
 * else the one in the libvirt already loaded (Python loads libvirt-python's module, and with
 * it libvirt, RTLD_LOCAL: out of RTLD_NEXT's sight).
 */
static void *next_definition(void **cache, const char *name)
{
    void *found = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
    if (found == NULL) {
        found = dlsym(RTLD_NEXT, name);
        if (found == NULL) {
            void *libvirt = dlopen("libvirt.so.0", RTLD_LAZY | RTLD_NOLOAD);
            if (libvirt != NULL) {
                found = dlsym(libvirt, name);
                dlclose(libvirt);
            }
        }
        __atomic_store_n(cache, found, __ATOMIC_RELEASE);
    }
    return found;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The start of the element <name ...> at or after `from`, or NULL. */
static const char *find_start_tag(const char *from, const char *limit, const char *name)
{
    size_t length = strlen(name);
    for (const char *at = from; (at = strchr(at, '<')) != NULL && at < limit; at++) {
        const char *after = at + 1 + length;
        if (strncmp(at + 1, name, length) == 0 &&
            (is_space(*after) || *after == '>' || *after == '/'))
            return at;
    }
    return NULL;
}

/* The '>' closing the tag that starts at `tag`, skipping quoted attribute values. */
static const char *tag_end(const char *tag)
{
    char quote = 0;
    for (const char *at = tag; *at; at++) {
        if (quote) {
            if (*at == quote)
                quote = 0;
        } else if (*at == '\'' || *at == '"') {
            quote = *at;
        } else if (*at == '>') {
            return at;
        }
    }
    return NULL;
}

/* The value of attribute `name` in the tag [tag, end): its start and length; 0 if absent. */
static int attribute(const char *tag, const char *end, const char *name, const char **value,
                     size_t *value_length)
{
    size_t length = strlen(name);
    const char *at = tag + 1;
    while (at < end && !is_space(*at) && *at != '>' && *at != '/')
        at++; /* the element's name */
    while (at < end) {
        while (at < end && (is_space(*at) || *at == '/'))
            at++;
        const char *key = at;
        while (at < end && !is_space(*at) && *at != '=' && *at != '>')
            at++;
        size_t key_length = (size_t)(at - key);
        while (at < end && is_space(*at))
            at++;
        if (at >= end || *at != '=')
            return 0;
        at++;
        while (at < end && is_space(*at))
            at++;
        if (at >= end || (*at != '\'' && *at != '"'))
            return 0;
        char quote = *at++;
        const char *start = at;
        while (at < end && *at != quote)
            at++;
        if (at >= end)
            return 0;
        if (key_length == length && strncmp(key, name, length) == 0) {
            *value = start;
            *value_length = (size_t)(at - start);
            return 1;
        }
        at++;
    }
    return 0;
}

static int equals(const char *value, size_t length, const char *expected)
{
    return length == strlen(expected) && strncmp(value, expected, length) == 0;
}

/*
 * The XML the IBM Z KVM host would have run, as TCG runs it: a new string (free() it),
 * or NULL when the domain is not s390x or needs no change.
 */
static char *as_tcg_domain(const char *xml)
{
    if (xml == NULL)
        return NULL;
    const char *limit = xml + strlen(xml);
    const char *domain = find_start_tag(xml, limit, "domain");
    const char *domain_end = domain ? tag_end(domain) : NULL;
    if (domain_end == NULL)
        return NULL;
    const char *os = find_start_tag(domain_end, limit, "os");
    const char *os_close = os ? strstr(os, "</os>") : NULL;
    const char *type = os_close ? find_start_tag(os, os_close, "type") : NULL;
    const char *type_end = type ? tag_end(type) : NULL;
    const char *arch;
    size_t arch_length;
    if (type_end == NULL || !attribute(type, type_end, "arch", &arch, &arch_length) ||
        !equals(arch, arch_length, "s390x"))
        return NULL;

    /* the two replaced spans, in document order: the domain's type value, the <cpu> element */
    const char *virt = NULL;
    size_t virt_length = 0;
    const char *kind;
    size_t kind_length;
    if (attribute(domain, domain_end, "type", &kind, &kind_length) && equals(kind, kind_length, "kvm")) {
        virt = kind;
        virt_length = kind_length;
    }
    const char *cpu = find_start_tag(domain_end, limit, "cpu");
    const char *cpu_stop = NULL; /* one past the element's last character */
    const char *cpu_tag_end = cpu ? tag_end(cpu) : NULL;
    const char *mode;
    size_t mode_length;
    if (cpu_tag_end && attribute(cpu, cpu_tag_end, "mode", &mode, &mode_length) &&
        equals(mode, mode_length, "host-model")) {
        if (cpu_tag_end[-1] == '/') {
            cpu_stop = cpu_tag_end + 1;
        } else {
            const char *close = strstr(cpu_tag_end, "</cpu");
            const char *close_end = close ? tag_end(close) : NULL;
            cpu_stop = close_end ? close_end + 1 : NULL;
        }
    }
    if (virt == NULL && cpu_stop == NULL)
        return NULL;

    size_t total = strlen(xml) + strlen("qemu") + strlen(TCG_CPU) + 1;
    char *out = malloc(total);
    if (out == NULL)
        return NULL;
    char *write = out;
    const char *read = xml;
    if (virt != NULL) {
        memcpy(write, read, (size_t)(virt - read));
        write += virt - read;
        memcpy(write, "qemu", 4);
        write += 4;
        read = virt + virt_length;
    }
    if (cpu_stop != NULL) {
        memcpy(write, read, (size_t)(cpu - read));
        write += cpu - read;
        memcpy(write, TCG_CPU, strlen(TCG_CPU));
        write += strlen(TCG_CPU);
        read = cpu_stop;
    }
    strcpy(write, read);
    return out;
}

int virNodeGetInfo(virConnectPtr conn, virNodeInfoPtr info)
{
    static void *cache;
    int (*real)(virConnectPtr, virNodeInfoPtr) = next_definition(&cache, "virNodeGetInfo");
    if (real == NULL)
        return -1;
    int result = real(conn, info);
    if (result == 0 && info != NULL) {
        memset(info->model, 0, sizeof(info->model));
        strncpy(info->model, HOST_MODEL, sizeof(info->model) - 1);
    }
    return result;
}

virDomainPtr virDomainDefineXML(virConnectPtr conn, const char *xml)
{
    static void *cache;
    virDomainPtr (*real)(virConnectPtr, const char *) = next_definition(&cache, "virDomainDefineXML");
    if (real == NULL)
        return NULL;
    char *translated = as_tcg_domain(xml);
    virDomainPtr domain = real(conn, translated ? translated : xml);
    free(translated);
    return domain;
}

virDomainPtr virDomainDefineXMLFlags(virConnectPtr conn, const char *xml, unsigned int flags)
{
    static void *cache;
    virDomainPtr (*real)(virConnectPtr, const char *, unsigned int) =
        next_definition(&cache, "virDomainDefineXMLFlags");
    if (real == NULL)
        return NULL;
    char *translated = as_tcg_domain(xml);
    virDomainPtr domain = real(conn, translated ? translated : xml, flags);
    free(translated);
    return domain;
}

virDomainPtr virDomainCreateXML(virConnectPtr conn, const char *xml, unsigned int flags)
{
    static void *cache;
    virDomainPtr (*real)(virConnectPtr, const char *, unsigned int) =
        next_definition(&cache, "virDomainCreateXML");
    if (real == NULL)
        return NULL;
    char *translated = as_tcg_domain(xml);
    virDomainPtr domain = real(conn, translated ? translated : xml, flags);
    free(translated);
    return domain;
}
