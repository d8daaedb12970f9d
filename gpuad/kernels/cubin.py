"""What NVRTC made of a kernel for a GPU, read from its CUBIN (an ELF file) without a GPU: machine
instructions (the size of the kernel's .text section: 16 bytes an instruction on sm_70 and later)
and registers per thread (the EIATTR_REGCOUNT record of the .nv.info section)."""
import struct

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
