# Writes OUT, a C file holding the Lua script IN as the string NAME and its
# SHA-1 (what Redis names it by: SCRIPT LOAD answers it, EVALSHA takes it)
# as NAME_sha.  Run by the build:
#   cmake -DIN=workers/scorer/write.lua -DNAME=ds_scorer_write_lua \
#         -DOUT=build/scorer_write_lua.c -P scripts/embed_lua.cmake
file(READ "${IN}" hex HEX)
file(SHA1 "${IN}" sha)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUT}.tmp"
  "/* generated from ${NAME}'s Lua source by scripts/embed_lua.cmake: do not edit */\n"
  "extern const char ${NAME}[];\n"
  "extern const char ${NAME}_sha[];\n"
  "const char ${NAME}[] = {${bytes}0};\n"
  "const char ${NAME}_sha[] = \"${sha}\";\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
