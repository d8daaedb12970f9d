"""What NVRTC makes of a region kernel for the H100 (sm_90), read from its CUBIN without a GPU:
machine instructions (the size of the kernel's .text section: 16 bytes an instruction on sm_70
and later) and registers per thread (the EIATTR_REGCOUNT record of its .nv.info section).

    python -m bench.sass memory_jacfwd tall_jacfwd ...   # each region of those cases at --size gpu,
                                                          # its 64-bit and 32-bit index variants
"""
import struct
import sys

_REGCOUNT = 0x2F  # EIATTR_REGCOUNT: (function symbol, registers)


def sections(elf):
    """{name: bytes} of an ELF64 little-endian file's sections."""
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    size, count, names = struct.unpack_from("<HHH", elf, 0x3A)
    heads = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + k * size) for k in range(count)]
    strtab = heads[names]
    table = elf[strtab[4]:strtab[4] + strtab[5]]

    def name(at):
        return table[at:table.index(b"\0", at)].decode()
    return {name(h[0]): elf[h[4]:h[4] + h[5]] for h in heads}


def measure(cubin, name):
    """(machine instructions, registers per thread) of kernel `name` in a CUBIN."""
    found = sections(cubin)
    symtab, strtab = found[".symtab"], found[".strtab"]
    symbols = [strtab[o:strtab.index(b"\0", o)].decode()
               for o, in (struct.unpack_from("<I", symtab, k) for k in range(0, len(symtab), 24))]
    info, registers, at = found.get(".nv.info", b""), None, 0
    while at + 4 <= len(info):
        form, attr, length = struct.unpack_from("<BBH", info, at)
        if form == 0x04 and attr == _REGCOUNT:
            symbol, count = struct.unpack_from("<II", info, at + 4)
            registers = count if symbols[symbol] == name else registers
        at += 4 + (length if form == 0x04 else 0)
    return len(found[f".text.{name}"]) // 16, registers


def main(names):
    import gpuad.numpy as gnp
    from bench import engines, problems
    from gpuad.kernels import index32, programs
    from gpuad.kernels.nvrtc import ARCH, compile_ptx
    for case in problems.select(",".join(names)):
        f, args = case.setup(gnp, problems.SIZES["gpu"])
        fun = engines._gpuad("cpu").transforms[case.transform](f)
        for k in programs.region_kernels(fun, *args, target="cuda"):
            wide = measure(compile_ptx(k.text, k.name, ARCH), k.name)
            narrow = measure(compile_ptx(*index32.first(k), ARCH), index32.first(k)[1]) if index32.applies(k) \
                else None
            print(f"{case.name} {k.name} shape {k.shape}: 64-bit indices {wide[0]} instructions, {wide[1]} registers"
                  + (f"; 32-bit {narrow[0]} instructions, {narrow[1]} registers" if narrow else "; no 32-bit variant"))


if __name__ == "__main__":
    main(sys.argv[1:])
