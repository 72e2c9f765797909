// Synchronisation between the pipes and the atomic-add switch (AscendC CPU model).
// SetFlag<X_Y>(id): once pipe X has finished everything issued before it, raises flag (X_Y, id);
// WaitFlag<X_Y>(id): pipe Y waits for the flag and lowers it. They must pair
// (docs/zh/api/SIMD-API/基础API/同步控制/核内同步/SetFlag-WaitFlag.md): a WaitFlag without a raised
// flag would wait forever, a second SetFlag before the WaitFlag would be lost, and a flag still
// raised when the kernel returns is an unpaired SetFlag -- all three are model errors.
// PipeBarrier<X>: X's earlier instructions complete before its later ones; PIPE_ALL: all pipes'
// (PipeBarrier(ISASI).md; PIPE_S is not supported there).
#ifndef MXDCN_SIM_SYNC_H
#define MXDCN_SIM_SYNC_H

namespace AscendC {

template <HardEvent evt>
inline void SetFlag(int32_t id) { sim::pipes().SetFlag(evt, id); }
template <HardEvent evt>
inline void WaitFlag(int32_t id) { sim::pipes().WaitFlag(evt, id); }
template <pipe_t pipe>
inline void PipeBarrier() { sim::pipes().Barrier(pipe); }

// SetAtomicAdd / SetAtomicNone are scalar-pipe settings whose ordering with the other pipes the
// hardware guarantees (核内同步/关键特性说明.md, "硬件保证的同步").
template <typename T>
inline void SetAtomicAdd() { sim::core().atomicElemSize = sizeof(T); }
inline void SetAtomicNone() { sim::core().atomicElemSize = 0; }

}  // namespace AscendC

#endif  // MXDCN_SIM_SYNC_H
