# Writes OUT, a C file holding every schemas/<id>-<Name>.avsc of DIR and the
# demo's rules file RULES as strings, so the binary has them when run
# outside the repository (see ds_builtin_schemas in workers/worker.h and
# ds_builtin_demo_rules in workers/gen.h).  Run by the build:
#   cmake -DDIR=schemas -DRULES=config/demo-rules.yaml -DOUT=build/schemas_builtin.c \
#         -P scripts/embed_schemas.cmake
file(GLOB files RELATIVE "${DIR}" "${DIR}/*.avsc")
list(SORT files)
set(body "")
set(n 0)
foreach(f IN LISTS files)
  file(READ "${DIR}/${f}" hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(APPEND body "static const unsigned char s${n}[] = {${bytes}0};\n")
  string(APPEND table "    {\"${f}\", (const char *)s${n}},\n")
  math(EXPR n "${n} + 1")
endforeach()
# and RULES, the demo's rules file, as ds_builtin_demo_rules (workers/gen.h)
file(READ "${RULES}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUT}.tmp"
  "/* generated from schemas/ and config/demo-rules.yaml by scripts/embed_schemas.cmake: do not edit */\n"
  "#include \"gen.h\"\n#include \"worker.h\"\n${body}"
  "const ds_schema_file_t ds_builtin_schemas[] = {\n${table}    {0, 0}};\n"
  "static const unsigned char rules[] = {${bytes}0};\n"
  "const char *const ds_builtin_demo_rules = (const char *)rules;\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
