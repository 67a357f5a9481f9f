/*
 * The emulated LPAR's libvirt failing half-way, on request, as seen through libvirt's client library.
 *
 * This is a piece of the LPAR emulation, not a change to the system under test. On a real
 * LPAR, libvirt sometimes fails in the middle of making a pod VM: the pool's file system is
 * full, the daemon restarts, a definition is refused. Preloaded (LD_PRELOAD) into the
 * adaptor's process only, this library makes one chosen libvirt call of that process fail,
 * whatever the adaptor is (the suite's reference in Python, CAA in Go), so that what the
 * adaptor leaves behind can be judged:
 *
 *   PEERPODS_LPAR_LIBVIRT_FAULT=<operation>:<n>   the n-th call (counted from 1, in this
 *                                                 process) of the operation fails, once
 *
 *   operation      the libvirt calls counted together
 *   volume-create  virStorageVolCreateXML, virStorageVolCreateXMLFrom
 *   domain-define  virDomainDefineXML, virDomainDefineXMLFlags
 *   domain-start   virDomainCreate, virDomainCreateWithFlags
 *
 * The failing call does not reach the daemon: it returns what libvirt returns on failure
 * (NULL, or -1) with the thread's libvirt error set to code VIR_ERR_OPERATION_FAILED and the
 * message "injected libvirt failure: <operation> call <n> refused by the emulated LPAR"; every
 * other call is passed on untouched. Without the variable nothing changes. A value it cannot
 * read is reported once on stderr and ignored.
 *
 * The real functions are found with dlsym(RTLD_NEXT) (another preloaded layer, such as the
 * IBM Z host's, or libvirt itself), else in the libvirt already loaded (Python loads
 * libvirt-python's module RTLD_LOCAL: out of RTLD_NEXT's sight). The error is set with
 * libvirt's virSetError, the function libvirt's own daemon uses to hand a saved error back.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#define VARIABLE "PEERPODS_LPAR_LIBVIRT_FAULT"

enum operation { VOLUME_CREATE, DOMAIN_DEFINE, DOMAIN_START, OPERATIONS };

static const char *const names[OPERATIONS] = {"volume-create", "domain-define", "domain-start"};
static const int error_domains[OPERATIONS] = {VIR_FROM_STORAGE, VIR_FROM_DOMAIN, VIR_FROM_DOMAIN};

static int chosen = -1;   /* the operation that fails, or -1: none */
static long failing_call; /* its call that fails, from 1 */
static long calls[OPERATIONS];

__attribute__((constructor)) static void read_request(void)
{
    const char *value = getenv(VARIABLE);
    if (value == NULL || *value == '\0')
        return;
    const char *colon = strchr(value, ':');
    char *end = NULL;
    long number = colon ? strtol(colon + 1, &end, 10) : 0;
    for (int op = 0; colon && op < OPERATIONS; op++) {
        if (strlen(names[op]) == (size_t)(colon - value) && strncmp(value, names[op], colon - value) == 0 &&
            end != colon + 1 && *end == '\0' && number >= 1) {
            chosen = op;
            failing_call = number;
            return;
        }
    }
    fprintf(stderr, "peerpods LPAR: ignoring %s=%s (expected <operation>:<n>, operation one of "
                    "volume-create, domain-define, domain-start, n >= 1)\n", VARIABLE, value);
}

/* libvirt's own definition of `name` (see the comment at the top). */
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

/* Counts the call; 1 when it is the one to fail (the thread's libvirt error is then set). */
static int fails(enum operation op)
{
    if (chosen != (int)op)
        return 0;
    long call = __atomic_add_fetch(&calls[op], 1, __ATOMIC_SEQ_CST);
    if (call != failing_call)
        return 0;
    static void *cache;
    int (*set_error)(virErrorPtr) = next_definition(&cache, "virSetError");
    char message[160];
    snprintf(message, sizeof message, "injected libvirt failure: %s call %ld refused by the emulated LPAR",
             names[op], call);
    if (set_error == NULL) {
        fprintf(stderr, "peerpods LPAR: %s (libvirt has no virSetError: the caller sees no reason)\n", message);
        return 1;
    }
    virError error;
    memset(&error, 0, sizeof error);
    error.code = VIR_ERR_OPERATION_FAILED;
    error.domain = error_domains[op];
    error.level = VIR_ERR_ERROR;
    error.message = message;
    set_error(&error);
    return 1;
}

virStorageVolPtr virStorageVolCreateXML(virStoragePoolPtr pool, const char *xml, unsigned int flags)
{
    static void *cache;
    virStorageVolPtr (*real)(virStoragePoolPtr, const char *, unsigned int) =
        next_definition(&cache, "virStorageVolCreateXML");
    if (real == NULL || fails(VOLUME_CREATE))
        return NULL;
    return real(pool, xml, flags);
}

virStorageVolPtr virStorageVolCreateXMLFrom(virStoragePoolPtr pool, const char *xml, virStorageVolPtr clone,
                                            unsigned int flags)
{
    static void *cache;
    virStorageVolPtr (*real)(virStoragePoolPtr, const char *, virStorageVolPtr, unsigned int) =
        next_definition(&cache, "virStorageVolCreateXMLFrom");
    if (real == NULL || fails(VOLUME_CREATE))
        return NULL;
    return real(pool, xml, clone, flags);
}

virDomainPtr virDomainDefineXML(virConnectPtr conn, const char *xml)
{
    static void *cache;
    virDomainPtr (*real)(virConnectPtr, const char *) = next_definition(&cache, "virDomainDefineXML");
    if (real == NULL || fails(DOMAIN_DEFINE))
        return NULL;
    return real(conn, xml);
}

virDomainPtr virDomainDefineXMLFlags(virConnectPtr conn, const char *xml, unsigned int flags)
{
    static void *cache;
    virDomainPtr (*real)(virConnectPtr, const char *, unsigned int) =
        next_definition(&cache, "virDomainDefineXMLFlags");
    if (real == NULL || fails(DOMAIN_DEFINE))
        return NULL;
    return real(conn, xml, flags);
}

int virDomainCreate(virDomainPtr domain)
{
    static void *cache;
    int (*real)(virDomainPtr) = next_definition(&cache, "virDomainCreate");
    if (real == NULL || fails(DOMAIN_START))
        return -1;
    return real(domain);
}

int virDomainCreateWithFlags(virDomainPtr domain, unsigned int flags)
{
    static void *cache;
    int (*real)(virDomainPtr, unsigned int) = next_definition(&cache, "virDomainCreateWithFlags");
    if (real == NULL || fails(DOMAIN_START))
        return -1;
    return real(domain, flags);
}
