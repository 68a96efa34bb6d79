# SPDX-License-Identifier: MIT
# Writes store_migrations.c: each driver's NNN_*.sql files, in order, as
# byte arrays (no escaping to get wrong), and the tables that list them.
file(WRITE ${OUT} "/* Generated from libcommon/store/sql by embed_sql.cmake. */\n"
                  "#include \"store_private.h\"\n\n")
foreach(driver sqlite pgsql)
  file(GLOB files ${SQL_DIR}/${driver}/*.sql)
  list(SORT files)
  set(names "")
  set(i 0)
  foreach(f ${files})
    file(READ ${f} hex HEX)
    string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
    file(APPEND ${OUT} "static const char ${driver}_${i}[] = {${bytes} 0};\n")
    list(APPEND names "${driver}_${i}")
    math(EXPR i "${i} + 1")
  endforeach()
  string(REPLACE ";" ", " list "${names}")
  file(APPEND ${OUT} "static const char *const ${driver}_scripts[] = {${list}};\n"
                     "const struct store_migrations store_migrations_${driver} = "
                     "{${driver}_scripts, ${i}};\n\n")
endforeach()
