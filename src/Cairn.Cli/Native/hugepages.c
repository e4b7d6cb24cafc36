/*
 * Linked into the NativeAOT binary (Cairn.Cli.csproj, target CompileHugePages): asks the kernel for transparent huge
 * pages on the binary's zero-filled data (.bss and NativeAOT's .hydrated section, ~11 MB), before the runtime starts.
 *
 * Why: at every start NativeAOT writes its "dehydrated" type data into .hydrated. In 4 KiB pages that is ~2,800 page
 * faults, most of the ~3,400 of a `cairn --version` and ~25 % of its CPU (perf, docs/benchmarks.md, "The start of a
 * wal-push call"). PostgreSQL runs `cairn wal-push` once per WAL segment, so the start is paid per segment. With
 * MADV_HUGEPAGE the region is faulted in 2 MiB pages where the kernel has them.
 *
 * Safe by construction: it only advises the kernel about memory this process already owns (no data is read or
 * changed, nothing is printed, no environment is read); where transparent huge pages are off ("never") or not built
 * into the kernel, madvise fails and nothing changes.
 */
#define _GNU_SOURCE
#include <link.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

static int advise_main_executable(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    if (info->dlpi_name != 0 && info->dlpi_name[0] != 0)
    {
        return 0; /* a shared library: the main executable is listed first, with an empty name */
    }
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < info->dlpi_phnum; i++)
    {
        const ElfW(Phdr) *p = &info->dlpi_phdr[i];
        if (p->p_type == PT_LOAD && (p->p_flags & PF_W) != 0 && p->p_memsz > p->p_filesz)
        {
            /* The zero-filled tail of the writable segment, from the first whole page past the file's bytes. */
            uintptr_t start = (info->dlpi_addr + p->p_vaddr + p->p_filesz + page - 1) & ~(page - 1);
            uintptr_t end = (info->dlpi_addr + p->p_vaddr + p->p_memsz + page - 1) & ~(page - 1);
            if (end > start)
            {
                (void)madvise((void *)start, end - start, MADV_HUGEPAGE);
            }
        }
    }
    return 1;
}

__attribute__((constructor)) static void cairn_hugepages(void)
{
    dl_iterate_phdr(advise_main_executable, 0);
}
