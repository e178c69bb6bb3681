// ThetaNetText.h: the plugin's byte and text helpers that need no FString: fingerprints
// as hex, entity ids as Blueprint integers, UTF-8 checks of peer bytes. Engine-free, tested
// by tests/unreal_frames.rs like ThetaNetFrames.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "theta.h"

namespace ThetaNet {
namespace Text {

/// Hex digits of a fingerprint (two per byte).
constexpr size_t FingerprintHexDigits = 2 * THETA_FINGERPRINT_LEN;

namespace Detail {

inline int HexValue(char C) {
    if (C >= '0' && C <= '9') {
        return C - '0';
    }
    if (C >= 'a' && C <= 'f') {
        return C - 'a' + 10;
    }
    if (C >= 'A' && C <= 'F') {
        return C - 'A' + 10;
    }
    return -1;
}

}  // namespace Detail

/// Parses a certificate fingerprint typed or pasted by a user: 64 hex digits, either case,
/// optionally grouped by ':', '-' or spaces (as `theta host` and OpenSSL print them).
/// False (Out untouched) on any other character or digit count.
inline bool ParseFingerprintHex(const char *Textual, size_t Len, uint8_t (&Out)[THETA_FINGERPRINT_LEN]) {
    if (Textual == nullptr) {
        return false;
    }
    uint8_t Bytes[THETA_FINGERPRINT_LEN] = {};
    size_t Digits = 0;
    for (size_t I = 0; I < Len; ++I) {
        const char C = Textual[I];
        if (C == ':' || C == '-' || C == ' ') {
            continue;
        }
        const int Value = Detail::HexValue(C);
        if (Value < 0 || Digits == FingerprintHexDigits) {
            return false;
        }
        Bytes[Digits / 2] = static_cast<uint8_t>(Bytes[Digits / 2] | (Value << (Digits % 2 == 0 ? 4 : 0)));
        ++Digits;
    }
    if (Digits != FingerprintHexDigits) {
        return false;
    }
    std::memcpy(Out, Bytes, sizeof Bytes);
    return true;
}

/// Writes a fingerprint as 64 lowercase hex digits and a NUL.
inline void FormatFingerprintHex(const uint8_t (&Fingerprint)[THETA_FINGERPRINT_LEN],
                                 char (&Out)[FingerprintHexDigits + 1]) {
    static const char Digits[] = "0123456789abcdef";
    for (size_t I = 0; I < THETA_FINGERPRINT_LEN; ++I) {
        Out[2 * I] = Digits[Fingerprint[I] >> 4];
        Out[2 * I + 1] = Digits[Fingerprint[I] & 0xF];
    }
    Out[FingerprintHexDigits] = '\0';
}

/// An entity id as a Blueprint integer (int64, the widest BP type): the same 64 bits.
inline int64_t EntityToBlueprint(uint64_t Entity) {
    int64_t Out;
    std::memcpy(&Out, &Entity, sizeof Out);
    return Out;
}

/// The entity id a Blueprint integer from EntityToBlueprint stands for.
inline uint64_t EntityFromBlueprint(int64_t Value) {
    uint64_t Out;
    std::memcpy(&Out, &Value, sizeof Out);
    return Out;
}

/// The peer that created (owns) an entity: the id's high 16 bits.
inline uint16_t EntityCreator(uint64_t Entity) { return static_cast<uint16_t>(Entity >> 48); }

/// Whether `Len` bytes are well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates,
/// nothing past U+10FFFF) without NUL: what the plugin requires of a peer's class key
/// before it becomes an FName.
inline bool IsCleanUtf8(const uint8_t *Data, size_t Len) {
    if (Data == nullptr) {
        return Len == 0;
    }
    size_t I = 0;
    while (I < Len) {
        const uint8_t B = Data[I];
        if (B == 0) {
            return false;
        }
        if (B < 0x80) {
            ++I;
            continue;
        }
        size_t Extra;
        uint32_t Code;
        uint32_t Min;
        if ((B & 0xE0) == 0xC0) {
            Extra = 1;
            Code = B & 0x1Fu;
            Min = 0x80;
        } else if ((B & 0xF0) == 0xE0) {
            Extra = 2;
            Code = B & 0x0Fu;
            Min = 0x800;
        } else if ((B & 0xF8) == 0xF0) {
            Extra = 3;
            Code = B & 0x07u;
            Min = 0x10000;
        } else {
            return false;
        }
        if (Len - I <= Extra) {
            return false;
        }
        for (size_t K = 1; K <= Extra; ++K) {
            const uint8_t C = Data[I + K];
            if ((C & 0xC0) != 0x80) {
                return false;
            }
            Code = (Code << 6) | (C & 0x3Fu);
        }
        if (Code < Min || Code > 0x10FFFF || (Code >= 0xD800 && Code <= 0xDFFF)) {
            return false;
        }
        I += Extra + 1;
    }
    return true;
}

/// Longest class key (the name a remote actor's class is looked up by), in bytes.
constexpr uint32_t MaxClassKeyBytes = 128;

/// Whether a peer's class-key bytes may be used: 1 to MaxClassKeyBytes of clean UTF-8.
inline bool IsValidClassKey(const uint8_t *Data, size_t Len) {
    return Len > 0 && Len <= MaxClassKeyBytes && IsCleanUtf8(Data, Len);
}

}  // namespace Text
}  // namespace ThetaNet
