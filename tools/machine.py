"""The machine a measurement ran on: the CPU's model, cores, clock and the ISA features that
decide the fast paths, or the GPUs; and the peak FLOP/s a figure is compared with. Every
benchmark figure names its machine (tools/benchmark.py, tools/profile_forward.py)."""

import os
import platform

# Dense tensor-core peaks from NVIDIA's H100 SXM data sheet (per GPU).
GPU_PEAKS = {'H100': {'fp32': 67e12, 'bf16': 989e12, 'fp16': 989e12},
             'H200': {'fp32': 67e12, 'bf16': 989e12, 'fp16': 989e12}}

# The /proc/cpuinfo flags that decide which fast paths a CPU has: fp32 FMA width (AVX2 / FMA,
# AVX-512F), native bf16 dot products (AVX-512 BF16), fp16 arithmetic (AVX-512 FP16) and the AMX
# tile units (bf16 and int8 matrix multiplies).
ISA_FLAGS = ('avx2', 'fma', 'avx512f', 'avx512_bf16', 'avx512_fp16', 'amx_bf16', 'amx_tile',
             'amx_int8')


def parse_cpuinfo(text):
    """The CPU of a /proc/cpuinfo text: {'name', 'mhz', 'vendor', 'family', and one boolean per
    ISA_FLAGS}.

    Pure (testable): the first processor's model name, clock ('cpu MHz'), vendor ('vendor_id')
    and family ('cpu family'), the flags of the first 'flags' line; None where the text lacks
    them.
    """
    name, mhz, vendor, family, flags = None, None, None, None, None
    for line in text.splitlines():
        key, _, value = line.partition(':')
        key, value = key.strip(), value.strip()
        if key == 'model name' and name is None:
            name = value
        elif key == 'vendor_id' and vendor is None:
            vendor = value
        elif key == 'cpu family' and family is None and value.isdigit():
            family = int(value)
        elif key == 'cpu MHz' and mhz is None:
            try:
                mhz = float(value)
            except ValueError:
                pass
        elif key == 'flags' and flags is None:
            flags = set(value.split())
    flags = flags or set()
    return dict({'name': name, 'mhz': mhz, 'vendor': vendor, 'family': family},
                **{f: f in flags for f in ISA_FLAGS})


def cpu_info():
    """This machine's CPU: model name, cores this process may use, clock and ISA_FLAGS."""
    try:
        with open('/proc/cpuinfo') as f:
            cpu = parse_cpuinfo(f.read())
    except OSError:
        cpu = parse_cpuinfo('')
    name = cpu.pop('name') or platform.processor() or 'CPU'
    return dict({'kind': 'cpu', 'name': name, 'cores': len(os.sched_getaffinity(0))}, **cpu)


def device_info():
    """The device the benchmark runs on: the CPU (cpu_info), or the GPUs' name and count with
    the host CPU under 'host'."""
    import tensorflow as tf
    cpu = cpu_info()
    gpus = tf.config.list_physical_devices('GPU')
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        name = details.get('device_name', 'GPU')
        return {'kind': 'gpu', 'name': name, 'count': len(gpus), 'host': cpu}
    return cpu


def describe_cpu(cpu):
    """'AMD EPYC 9R14, 2 cores, 3.7 GHz; avx2 fma avx512f avx512_bf16 (no avx512_fp16, amx)'."""
    text = '%s, %d cores' % (cpu['name'], cpu['cores'])
    if cpu.get('mhz'):
        text += ', %.1f GHz' % (cpu['mhz'] / 1e3)
    has = [f for f in ISA_FLAGS if cpu.get(f)]
    lacks = [f for f in ISA_FLAGS if f not in has]
    if not any(f.startswith('amx') for f in has):  # the three AMX flags come together
        lacks = [f for f in lacks if not f.startswith('amx')] + ['amx']
    return '%s; %s' % (text, ' '.join(has + ['(no %s)' % ', '.join(lacks)] if lacks else has))


def describe_machine(dev):
    """One line: the CPU (describe_cpu), or the GPUs and their host CPU."""
    if dev['kind'] == 'gpu':
        return '%d x %s; host CPU: %s' % (dev['count'], dev['name'], describe_cpu(dev['host']))
    return describe_cpu(dev)


def machine_info(dev):
    """The JSON's "machine": the device (device_info), its one-line summary and the software."""
    import tensorflow as tf
    return dict(dev, summary=describe_machine(dev), platform=platform.platform(),
                python=platform.python_version(), tensorflow=tf.__version__)


def splits_512_bit_vectors(cpu):
    """AMD's Zen 4 (family 25 with AVX-512; Zen 3, also family 25, has none) runs a 512-bit
    instruction as two halves on its 256-bit units: AVX2's fp32 rate per cycle, 32 FLOP."""
    return bool(cpu.get('avx512f') and cpu.get('vendor') == 'AuthenticAMD'
                and cpu.get('family') == 25)


def peak_flops(dev, precision):
    """(FLOP/s or None, how it was obtained)."""
    if dev['kind'] == 'gpu':
        for key, peaks in GPU_PEAKS.items():
            if key in dev['name']:
                return peaks[precision], '%s %s dense (data sheet)' % (key, precision)
        return None, 'unknown GPU'
    if not dev.get('mhz') or not dev.get('fma'):
        return None, 'unknown'
    # fp32 lanes per vector x 2 (FMA) x 2 FMA units per core; bf16/fp16 without native support
    # run at best at this rate (the estimate is fp32's for every precision, which a CPU with
    # native bf16 / fp16 instructions, ISA_FLAGS, can exceed: the label says so).
    lanes = 16 if dev['avx512f'] and not splits_512_bit_vectors(dev) else 8
    peak = dev['cores'] * dev['mhz'] * 1e6 * lanes * 2 * 2
    source = 'estimate: %d cores x %.0f MHz x %d fp32 FLOP/cycle' % (
        dev['cores'], dev['mhz'], lanes * 4)
    native = {'bf16': ('avx512_bf16', 'amx_bf16'), 'fp16': ('avx512_fp16',)}.get(precision, ())
    native = [f for f in native if dev.get(f)]
    if native:
        source += ' (fp32 rate; this CPU\'s %s can exceed it)' % ' / '.join(native)
    return peak, source

